"""A write service and identity started while their PostgreSQL is unreachable serve at once and
wait for it (runtime/opening.py): alive, not ready and refusing commands with a 503 meanwhile,
ready and serving soon after it answers, and stopped at once by SIGTERM while they wait.
Real processes (the console scripts), their databases behind a proxy that is cut."""

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.api import assert_problem, unique_email
from tests.support.auth import OPERATOR
from tests.support.postgres import url_variables
from tests.support.processes import entry_point, free_port
from tests.support.proxy import CuttableProxy
from tests.support.servers import wait_until
from tests.support.waiting import (
    assert_waiting,
    nowhere,
    postgres_cut_off,
    started,
    status_of,
    stop_promptly,
)

pytestmark = pytest.mark.postgres

WRITE_API = entry_point("strata-write-api")
IDENTITY = entry_point("strata-identity")
READY_SECONDS = 20.0
"""After PostgreSQL answers again: the next try comes within 5 s."""
CLIENT = {"client_id": "waiting-e2e", "role": "service", "secret": "s" * 24}
STOPPED = (0, -signal.SIGTERM)
"""A normal stop: uvicorn re-raises the SIGTERM it handled, once it has shut down."""


def _write_service(urls: dict[str, str], port: int) -> tuple[list[str], dict[str, str]]:
    assert WRITE_API, "the strata-write-api console script is not installed"
    env = {**url_variables(urls), "STRATA_PORT": str(port), "STRATA_DB_CONNECT_TIMEOUT": "1"}
    return [WRITE_API, "--context", "users"], env


def _identity(url: str, port: int) -> tuple[list[str], dict[str, str]]:
    assert IDENTITY, "the strata-identity console script is not installed"
    env = {
        "STRATA_IDENTITY_DATABASE_URL": url,
        "STRATA_IDENTITY_PORT": str(port),
        "STRATA_DB_CONNECT_TIMEOUT": "1",
        "STRATA_IDENTITY_BOOTSTRAP_CLIENTS": json.dumps([CLIENT]),
    }
    return [IDENTITY, "serve"], env


def _waits_then_serves(
    base: str,
    process: subprocess.Popen[bytes],
    proxy: CuttableProxy,
    waiting: str,
    command: Callable[[], httpx.Response],
) -> httpx.Response:
    """While the proxy is cut: alive, not ready, `command` refused with a 503 and
    `Retry-After`. Once restored: ready within `READY_SECONDS`; what `command` answers then."""
    assert_waiting(base, process, waiting)
    refused = command()
    assert_problem(refused, 503, waiting)
    assert refused.headers["Retry-After"] == "1"
    proxy.restore()
    wait_until(lambda: status_of(f"{base}/readyz") == 200, READY_SECONDS, "ready")
    return command()


def test_a_write_service_waits_for_its_event_store_then_takes_commands(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    user = {"name": "Ada", "email": unique_email()}
    with postgres_cut_off("users") as (proxy, urls):
        argv, env = _write_service(urls, port)
        with started(argv, env, tmp_path / "write.log") as process:
            created = _waits_then_serves(
                base, process, proxy, "the users event store is not reachable yet",
                lambda: httpx.post(f"{base}/users", json=user, headers=OPERATOR),
            )  # fmt: skip
    assert created.status_code == 201, created.text  # the refused one stored nothing


def test_identity_waits_for_its_database_then_issues_tokens(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    form = {"grant_type": "client_credentials"}
    credentials = (CLIENT["client_id"], CLIENT["secret"])
    with postgres_cut_off("identity") as (proxy, urls):
        argv, env = _identity(urls["identity"], port)
        with started(argv, env, tmp_path / "identity.log") as process:
            issued = _waits_then_serves(
                base, process, proxy, "the identity database is not reachable yet",
                lambda: httpx.post(f"{base}/token", data=form, auth=credentials),
            )  # fmt: skip
    assert issued.status_code == 200, issued.text
    assert issued.json()["access_token"]


@pytest.mark.parametrize("service", ["write service", "identity"])
def test_sigterm_stops_a_service_waiting_for_postgresql_at_once(
    service: str, tmp_path: Path
) -> None:
    port = free_port()
    if service == "identity":
        argv, env = _identity(nowhere("identity"), port)
    else:
        argv, env = _write_service({"users": nowhere("users")}, port)
    with started(argv, env, tmp_path / "service.log") as process:
        assert_waiting(f"http://127.0.0.1:{port}", process, "is not reachable yet")
        assert stop_promptly(process) in STOPPED
