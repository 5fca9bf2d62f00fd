"""What every bench needs from the host it runs on: a log on stderr, free ports, the
virtualenv's scripts, process groups stopped cleanly, and scratch PostgreSQL databases."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg

HOST = "127.0.0.1"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def venv_script(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        sys.exit(f"write_throughput: cannot find {name!r} next to {sys.executable} or on PATH")
    return found


def stop_process_group(process: subprocess.Popen[bytes], name: str, timeout: float = 30.0) -> None:
    """SIGINT to the process's own group (like Ctrl-C), SIGKILL to it if it lingers; then make
    sure no member of the group (e.g. a uvicorn worker) is left behind."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in time; killing its process group")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def admin_url(base: str) -> str:
    return f"{base}/postgres"


def recreate_database(base: str, name: str) -> None:
    with psycopg.connect(admin_url(base), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def ensure_database(base: str, name: str) -> None:
    with psycopg.connect(admin_url(base), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


TESTS_CLAIM = "strata:test:scratch-claim"
"""The key by which a test claims a Redis database (tests/support/read_models.py): it takes only
an empty one, and flushes it when it ends."""
BENCH_CLAIM = "a bench"


def flush_redis_database(client: Any) -> None:
    """Empty a bench's Redis database (a `redis.Redis` on it) and claim it as the tests do, so
    none takes it for free; exit if a test holds it (its projector would write there: a bench
    run once lost events to one). The claim is checked and the database flushed atomically."""
    from redis.exceptions import WatchError  # noqa: PLC0415

    with client.pipeline() as pipe, contextlib.suppress(WatchError):  # a test claimed it meanwhile
        pipe.watch(TESTS_CLAIM)
        if pipe.get(TESTS_CLAIM) in (None, BENCH_CLAIM.encode()):
            pipe.multi()
            pipe.flushdb()
            pipe.set(TESTS_CLAIM, BENCH_CLAIM)
            pipe.execute()
            return
    database = client.connection_pool.connection_kwargs.get("db")
    sys.exit(f"bench: Redis database {database} is claimed by a test run; pass another --redis-db")


def source_digest(packages: Iterable[str]) -> str:
    """A short hash of the Python sources of `packages`, to tell which code a figure belongs to."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


class SamplerThread:
    """A daemon thread running `_run` from `start()` to `stop()`; `_run` loops on
    `self._stop.wait(interval)`, which turns true once stopped."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        raise NotImplementedError
