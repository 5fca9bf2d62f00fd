"""Running the project's console scripts as real processes, as operators and clients meet them."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

BIN = str(Path(sys.executable).parent)


def entry_point(name: str) -> str | None:
    """The installed console script `name` beside this interpreter, if any."""
    return shutil.which(name, path=BIN)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_service(
    script: str | None,
    env: dict[str, str],
    port_variable: str,
    *,
    ready_seconds: float = 20,
    arguments: Sequence[str] = (),
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start `script` (with `arguments`) on a free port (given in `port_variable`), wait for
    /readyz, and SIGTERM it at the end. Yields the base URL and the process (stdout and stderr
    merged)."""
    assert script, "the console script is not installed"
    port = free_port()
    process = subprocess.Popen(
        [script, *arguments],
        env={**os.environ, **env, port_variable: str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
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
            process.kill()
            pytest.fail(f"{script} did not become ready: {process.communicate()[0]}")
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
