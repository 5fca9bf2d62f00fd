"""Every process logs in one format: a relay's log line and a write API's have the same fields.

Both lines come from real processes, configured as their console scripts configure them: the
relay's `main`, and the write API's `create_app()` without settings (what uvicorn calls in a
server process)."""

import json
import os
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from contexts.settings import CONTEXTS
from tests.support.postgres import url_settings

FIELDS = {"time", "level", "logger", "message"}

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/none"

WRITE_API = """
from fastapi.testclient import TestClient
from write_api.app import create_app

def broken(*_):
    raise RuntimeError("disk on fire")

with TestClient(create_app(), raise_server_exceptions=False) as client:
    client.app.state.services.users.register = broken
    client.post(
        "/users",
        json={"name": "Ada", "email": "ada@example.com"},
        headers={"X-Correlation-Id": "corr-42"},
    )
"""


def _environment(**strata: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    return kept | {f"STRATA_{name.upper()}": value for name, value in strata.items()}


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _relay_line() -> dict[str, Any]:
    """The error line of a relay whose port is taken (it waits for an unreachable store)."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        env = _environment(
            **url_settings(dict.fromkeys(CONTEXTS, UNREACHABLE)),
            relay_port=str(taken.getsockname()[1]),
        )
        done = subprocess.run(
            [sys.executable, "-m", "eventlog.relay_main", "--context", "users"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    [line] = [line for line in _json_lines(done.stderr) if line["logger"] == "strata.relay"]
    return line


def _write_api_line(data_dir: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", WRITE_API],
        # The line of an unexpected error is wanted here, not a 401: no token checks.
        env=_environment(data_dir=str(data_dir), auth="insecure"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [line] = [line for line in _json_lines(done.stderr) if line["logger"] == "strata.write_api"]
    return line


def test_the_relay_and_the_write_api_log_the_same_fields(tmp_path: Path) -> None:
    relay, write_api = _relay_line(), _write_api_line(tmp_path)

    assert relay.keys() >= FIELDS and write_api.keys() >= FIELDS
    assert relay.keys() - FIELDS == {"context"}  # the relay's extra
    assert write_api.keys() - FIELDS == {"correlation_id", "path", "exception"}
    for line in (relay, write_api):
        assert datetime.fromisoformat(line["time"]).utcoffset() is not None
        assert line["level"] == "error"
    assert relay["context"] == "users"
    assert write_api["correlation_id"] == "corr-42"
    assert "RuntimeError: disk on fire" in write_api["exception"]
