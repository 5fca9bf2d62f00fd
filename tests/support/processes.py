"""Running the project's console scripts as real processes, as operators and clients meet them."""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

BIN = str(Path(sys.executable).parent)


def entry_point(name: str) -> str | None:
    """The installed console script `name` beside this interpreter, if any."""
    return shutil.which(name, path=BIN)


def run_cli(
    program: str, env: Mapping[str, str], *arguments: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A command-line tool run as an operator runs it, in `env` alone; whatever its exit code."""
    return subprocess.run(
        [program, *arguments],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_json(program: str, env: Mapping[str, str], *arguments: str) -> Any:
    """What the tool prints with `--json`, once it has succeeded."""
    done = run_cli(program, env, *arguments, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


LOWEST_PORT = 10_000
EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
_given: set[int] = set()


def free_port() -> int:
    """A loopback port free now and not given before, below the kernel's ephemeral range: a
    port the kernel hands out (binding port 0) can be taken by any outgoing connection's
    ephemeral end before the server meant for it binds it, which on a busy machine kills a
    server at start (seen as a JetStream cluster node exiting in CI)."""
    below = _ephemeral_start()
    for _ in range(1000):
        port = random.randrange(LOWEST_PORT, below)
        if port not in _given and bindable(port):
            _given.add(port)
            return port
    raise RuntimeError(f"no free loopback port between {LOWEST_PORT} and {below}")


def _ephemeral_start() -> int:
    try:
        return max(int(EPHEMERAL_PORTS.read_text().split()[0]), LOWEST_PORT + 1000)
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def bindable(port: int) -> bool:
    """Whether a server could listen on this loopback port now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stop_process(process: subprocess.Popen[Any], seconds: float = 60) -> None:
    """SIGTERM `process` (a supervisor stops its children so) and wait; kill it past `seconds`."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()


def without_strata_variables() -> dict[str, str]:
    """This process's environment minus its `STRATA_*` variables, for a child configured by the
    test alone."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}


def start_projector(
    stack: dict[str, str], port: int, stderr: int | IO[str] = subprocess.PIPE
) -> subprocess.Popen[str]:
    """A `strata-projector` process on `stack`'s variables, its status endpoint on `port`."""
    script = entry_point("strata-projector")
    assert script, "the strata-projector console script is not installed"
    return subprocess.Popen(
        [script],
        env={**without_strata_variables(), **stack, "STRATA_PROJECTOR_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


def readiness(port: int) -> tuple[int, str]:
    """The status and body of /readyz on `port`; (0, "") while nothing answers."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
    except httpx.TransportError:
        return 0, ""
    return response.status_code, response.text


def holds_within(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether `condition` holds at some poll within `seconds` (polled every 0.1 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@contextmanager
def running_service(
    script: str | None,
    env: dict[str, str],
    port_variable: str,
    *,
    ready_seconds: float = 20,
    port: int | None = None,
    args: Sequence[str] = (),
    log: Path | None = None,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start `script` (with `args`) on `port` or a free one (given in `port_variable`), wait for
    /readyz, and SIGTERM it at the end. Yields the base URL and the process, whose stdout and
    stderr go, merged, to its `stdout` pipe, or appended to `log` (a process living long enough
    to fill a pipe no one reads would block)."""
    assert script, "the console script is not installed"
    port = port or free_port()
    sink = None if log is None else log.open("a")
    process = subprocess.Popen(
        [script, *args],
        env={**os.environ, **env, port_variable: str(port)},
        stdout=subprocess.PIPE if sink is None else sink,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its workers too are killed if it never gets ready
    )
    if sink is not None:
        sink.close()  # the child holds its own copy
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_seconds
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            # the whole group: a worker left alive would hold the pipe open, and reading it hang
            os.killpg(process.pid, signal.SIGKILL)
            said = process.communicate()[0] if log is None else log.read_text(encoding="utf-8")
            pytest.fail(f"{script} did not become ready: {said}")
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
