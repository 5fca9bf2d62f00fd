"""The write API as a client meets it: a real `strata-write-api` process over HTTP."""

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from contexts.settings import CONTEXTS
from tests.support.api import unique_email
from tests.support.auth import OPERATOR
from tests.support.postgres import require_postgres, scratch_databases, url_variables
from tests.support.processes import entry_point, running_service
from tests.support.raw_http import raw_exchange

ENTRY_POINT = entry_point("strata-write-api")
ALL_IN_ONE = entry_point("strata")


@contextmanager
def running_api(
    env: dict[str, str], script: str | None = ENTRY_POINT
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with running_service(script, env, "STRATA_PORT") as running:
        yield running


def _embedded(tmp_path: Path) -> dict[str, str]:
    return {"STRATA_DATA_DIR": str(tmp_path / "var")}


def test_the_process_serves_commands_docs_and_survives_a_restart(tmp_path: Path) -> None:
    email = unique_email("e2e")
    with running_api(_embedded(tmp_path)) as (base, process):
        created = httpx.post(
            f"{base}/users", json={"name": "Ada", "email": email}, headers=OPERATOR
        )
        assert created.status_code == 201
        user = created.json()["id"]
        assert httpx.get(f"{base}/docs").status_code == 200
        paths = httpx.get(f"{base}/openapi.json").json()["paths"]
        assert {"/users", "/users/{user_id}/name", "/orders/{order_id}/cancel"} <= set(paths)
    output = process.stdout.read() if process.stdout else ""
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in output
    assert f"docs: {base}/docs" in output

    with running_api(_embedded(tmp_path)) as (base, _):
        profile = httpx.get(f"{base}/users/{user}", headers=OPERATOR)
        assert profile.status_code == 200
        assert profile.json()["email"] == email
        duplicate = httpx.post(
            f"{base}/users", json={"name": "Copy", "email": email}, headers=OPERATOR
        )
        assert duplicate.status_code == 409


@pytest.mark.postgres
def test_the_process_runs_in_stack_mode_on_fresh_databases_with_two_workers() -> None:
    """Both workers create the tables at once on empty databases: neither may trip the other."""
    with scratch_databases(require_postgres(), *CONTEXTS) as urls:
        env = {**url_variables(urls), "STRATA_WEB_WORKERS": "2"}
        _exercise_stack(env)


def _exercise_stack(env: dict[str, str]) -> None:
    with running_api(env) as (base, process):
        user = httpx.post(
            f"{base}/users", json={"name": "Ada", "email": unique_email()}, headers=OPERATOR
        )
        order = httpx.post(
            f"{base}/orders",
            json={"user_id": user.json()["id"], "currency": "USD"},
            headers=OPERATOR,
        )
        assert order.status_code == 201
        assert order.json()["position"].startswith("orders:")
        for request in UNREADABLE:
            assert_unreadable_is_a_problem(base, request)
    assert "stack mode" in (process.stdout.read() if process.stdout else "")


UNREADABLE = [
    b"FOO /users HTTP/1.1\r\nHost: x\r\n\r\n",  # no such method
    b"GET /users HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x7fb\r\n\r\n",
    b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
]
"""Requests uvicorn's parser refuses before the app sees them (the heads the protocol refuses
itself, such as a request line over 60 KiB, are tests/component/test_request_heads.py's)."""


def assert_unreadable_is_a_problem(base: str, request: bytes) -> None:
    status, headers, body = raw_exchange(base, request)
    assert status == "HTTP/1.1 400 Bad Request", request[:40]
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body) == {
        "type": "/problems/bad-request",
        "title": "Bad request",
        "status": 400,
        "detail": "the request is not valid HTTP/1.1",
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STRATA_PORT": "not-a-port"}, "STRATA_PORT"),
        ({"STRATA_USERS_DATABASE_URL": "postgresql://x/y"}, "STRATA_ORDERS_DATABASE_URL"),
        ({"STRATA_WORKER_THREADS": "0"}, "STRATA_WORKER_THREADS"),
    ],
)
def test_invalid_settings_stop_with_a_one_line_error(env: dict[str, str], message: str) -> None:
    assert ENTRY_POINT
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    result = subprocess.run(
        [ENTRY_POINT],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]


def test_the_all_in_one_process_answers_reads_of_its_own_writes(tmp_path: Path) -> None:
    """What the Quickstart starts: commands, the fan-out and the read API in one process."""
    with running_api(_embedded(tmp_path), ALL_IN_ONE) as (base, process):
        created = httpx.post(
            f"{base}/users", json={"name": "Ada", "email": unique_email()}, headers=OPERATOR
        )
        assert created.status_code == 201
        token = created.json()["position"]
        user = created.json()["id"]
        profile = httpx.get(
            f"{base}/read/users/{user}", params={"position": token, "wait": 5}, headers=OPERATOR
        )
        assert profile.status_code == 200, profile.text
        assert profile.json()["name"] == "Ada"
        assert_unreadable_is_a_problem(base, UNREADABLE[0])
        assert (
            httpx.get(
                f"{base}/read/users", params={"position": token}, headers=OPERATOR
            ).status_code
            == 200
        )
    output = process.stdout.read() if process.stdout else ""
    assert f"read API:  {base}/read" in output


def test_the_all_in_one_process_refuses_the_stack_mode_in_one_line() -> None:
    assert ALL_IN_ONE
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env = url_variables({context: f"postgresql://x/{context}" for context in CONTEXTS})
    result = subprocess.run(
        [ALL_IN_ONE], env={**clean, **env}, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "scripts/stack" in result.stderr
