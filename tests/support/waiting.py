"""Services started while their PostgreSQL is unreachable (`runtime.opening`): real processes,
their databases behind a proxy that is cut until the test restores it, or at a port where
nothing listens."""

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.api import assert_problem
from tests.support.postgres import require_postgres, scratch_databases
from tests.support.processes import free_port
from tests.support.proxy import CuttableProxy, proxy_to_postgres, through
from tests.support.servers import wait_until

START_SECONDS = 30.0
"""A process on a busy machine takes seconds to import everything."""
STOP_SECONDS = 3.0


@contextmanager
def postgres_cut_off(*names: str) -> Iterator[tuple[CuttableProxy, dict[str, str]]]:
    """Scratch databases `names` and their URLs through a proxy that is cut: PostgreSQL is
    unreachable until `proxy.restore()`."""
    with scratch_databases(require_postgres(), *names) as urls:
        proxy = proxy_to_postgres(urls[names[0]])
        proxy.cut()
        try:
            yield proxy, {name: through(proxy, url) for name, url in urls.items()}
        finally:
            proxy.close()


def nowhere(dbname: str) -> str:
    """A PostgreSQL URL at a loopback port where nothing listens."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/{dbname}"


@contextmanager
def started(
    argv: Sequence[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`argv` running with `env` added to this process's environment, its output in `log`;
    stopped (SIGTERM, then SIGKILL) at the end if it still runs."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            list(argv), env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(15)


def status_of(url: str) -> int:
    """The status of a GET of `url`; 0 while nothing answers."""
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return 0


def assert_waiting(base: str, process: subprocess.Popen[bytes], *fragments: str) -> None:
    """The process is alive (/healthz 200, polled until it answers) and not ready: /readyz is
    a 503 problem whose detail holds `fragments` (polled until it does)."""

    def answers() -> bool:
        assert process.poll() is None, f"the process exited with {process.returncode}"
        return status_of(f"{base}/healthz") == 200

    def says_why() -> bool:
        detail = httpx.get(f"{base}/readyz", timeout=2).json().get("detail", "")
        return all(fragment in detail for fragment in fragments)

    wait_until(answers, START_SECONDS, f"{base}/healthz answers")
    wait_until(says_why, START_SECONDS, f"{base}/readyz says {fragments}")
    assert_problem(httpx.get(f"{base}/readyz", timeout=2), 503, *fragments)


def stop_promptly(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM `process`; its exit code, once it has exited within `STOP_SECONDS`."""
    process.send_signal(signal.SIGTERM)
    started_at = time.monotonic()
    code = process.wait(STOP_SECONDS * 5)
    took = time.monotonic() - started_at
    assert took < STOP_SECONDS, f"stopped {took:.1f} s after SIGTERM"
    return code
