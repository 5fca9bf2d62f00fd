"""The write API of bench/write_throughput.py as a subprocess (`strata-write-api`, or the
storeless framework ceiling) on fresh event stores, one per registered context."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import loadgen
from bench_auth import unthrottled
from bench_host import HOST, free_port, stop_process_group, venv_script
from fanout_stack import Service, spawn

from contexts.registered import REGISTRY

# Another run of this bench on the same PostgreSQL drops these databases under this one's feet:
# concurrent runs (several engineers on one host) each set their own suffix.
DB_SUFFIX = os.environ.get("STRATA_BENCH_DB_SUFFIX", "")
STORE_DBS = {
    context.database_url_variable: f"strata_bench_{context.name}{DB_SUFFIX}" for context in REGISTRY
}
USERS_DB = STORE_DBS[REGISTRY["users"].database_url_variable]

STORELESS = ("noop", "floor")
"""The commands answered without a store, by bench/framework_ceiling.py."""
SERVER_LOG_LINES = 30
"""How much of the server's log a failure prints."""


def start_server(
    base: str, workers: int, log_dir: Path, jwks_url: str, *, storeless: str | None = None
) -> Service:
    """The write API, or with `storeless` ("noop" or "floor") the same request answered by
    bench/framework_ceiling.py's FastAPI app or bare ASGI app."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        **{variable: f"{base}/{database}" for variable, database in STORE_DBS.items()},
        STRATA_JWKS_URL=jwks_url,
        STRATA_HOST=HOST,
        STRATA_PORT=str(port),
        STRATA_WEB_WORKERS=str(workers),
        STRATA_LOG_LEVEL=env.get("STRATA_LOG_LEVEL", "warning"),
        **unthrottled(env),
    )
    command = [venv_script("strata-write-api")]
    if storeless is not None:
        factory = f"framework_ceiling:create_{'floor' if storeless == 'floor' else 'app'}"
        command = [
            *(sys.executable, "-m", "uvicorn", factory, "--factory"),
            *("--app-dir", str(Path(__file__).parent), "--host", HOST, "--port", str(port)),
            *("--workers", str(workers), "--log-level", "warning", "--no-access-log"),
        ]
    return spawn("write-api", command, env, port, log_dir)


def wait_ready(server: Service, timeout: float = 60.0) -> None:
    request = loadgen.request_bytes("GET", "/readyz", f"{HOST}:{server.port}")
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the write API exited with {server.process.returncode}")
        try:
            response = loadgen.run(lambda: loadgen.fetch(HOST, server.port, request))
        except (OSError, TimeoutError, EOFError):
            response = None
        # several answers in a row, so that every worker process is likely up
        streak = streak + 1 if response is not None and response.status == 200 else 0
        if streak >= 5:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the write API was not ready within {timeout:g} s")


def stop_server(server: Service, timeout: float = 30.0) -> None:
    stop_process_group(server.process, "write API", timeout)
