"""A rate limit set for a route the service does not have (a typo) is refused, naming it and
the service's routes: at start, and in a live settings document (which is then refused whole)."""

import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from contexts.settings import Settings
from read_api.app import create_app as create_read_app
from runtime.live_settings import LiveDocument, LiveSettingsFile, live_settings_of
from runtime.rate_limits import UnknownRoutes
from tests.component.test_service_rate_limits import PROFILE, statuses, write_api
from tests.support.auth import IDENTITY
from tests.support.bff import read_database
from tests.support.processes import entry_point, free_port, run_cli
from tests.support.servers import wait_until

TYPO = "GET /user/{user_id}"
PORTS = ("STRATA_PORT", "STRATA_READ_API_PORT", "STRATA_BFF_WEB_PORT")


def test_a_write_service_refuses_to_start_with_a_limit_of_an_unknown_route(
    tmp_path: Path,
) -> None:
    limits = {PROFILE: "2/minute", TYPO: "2/minute", "POST /sign-up": "1/minute"}
    with pytest.raises(UnknownRoutes) as refused, write_api(tmp_path, rate_limit_routes=limits):
        pass
    message = str(refused.value)
    assert message.startswith(
        "rate_limit_routes (STRATA_RATE_LIMIT_ROUTES): no rate-limited route"
        " 'GET /user/{user_id}', 'POST /sign-up' in this service; its routes: "
    )
    assert f"{PROFILE}, " in message and "POST /users" in message


def test_the_read_api_refuses_a_route_of_another_service(tmp_path: Path) -> None:
    with read_database(tmp_path) as (data_dir, _):
        settings = Settings(data_dir=data_dir, rate_limit_routes={"POST /users": "1/minute"})
        refused = pytest.raises(UnknownRoutes, match="'POST /users' in this service")
        with refused, TestClient(create_read_app(settings)):
            pass


def test_a_live_document_with_an_unknown_route_is_refused_whole(tmp_path: Path) -> None:
    live_file = LiveSettingsFile(tmp_path / "live" / "write.json")
    ada = str(uuid.uuid4())
    path, headers = f"/users/{ada}", IDENTITY.user(ada)
    with write_api(tmp_path, live_settings_file=live_file.path) as client:
        live = live_settings_of(client.app)  # type: ignore[arg-type]
        assert live is not None
        with pytest.raises(UnknownRoutes, match=re.escape(repr(TYPO))):
            live.apply({"rate_limit_routes": {PROFILE: "2/minute", TYPO: "2/minute"}})
        assert live.current.rate_limit_routes == {}

        live_file.write(LiveDocument("write", 3, {"rate_limit_routes": {TYPO: "2/minute"}}))

        def refused() -> bool:
            return "strata_live_settings_rejected_total 1.0" in client.get("/metrics").text

        wait_until(refused, 10, "the write API refuses the live settings")
        assert statuses(client, path, headers, 3) == [404] * 3


@contextmanager
def started_with_live_file(kind: str, tmp_path: Path, live_file: Path) -> Iterator[TestClient]:
    """A write API or a read API following `live_file`."""
    if kind == "write":
        with write_api(tmp_path, live_settings_file=live_file) as client:
            yield client
        return
    with read_database(tmp_path) as (data_dir, _):
        settings = Settings(data_dir=data_dir, live_settings_file=live_file)
        with TestClient(create_read_app(settings)) as client:
            yield client


@pytest.mark.parametrize("kind", ["write", "read"])
def test_a_service_restarted_over_a_live_document_with_an_unknown_route_starts_on_its_own(
    kind: str, tmp_path: Path
) -> None:
    """The sidecar hands on what the bucket holds: a service that refused a document while it
    ran meets it again when it starts, and refuses it again rather than stopping."""
    live_file = LiveSettingsFile(tmp_path / "live" / f"{kind}.json")
    document = {"rate_limit_routes": {TYPO: "2/minute"}, "log_level": "warning"}
    live_file.write(LiveDocument(kind, 4, document))
    with started_with_live_file(kind, tmp_path, live_file.path) as client:
        live = live_settings_of(client.app)  # type: ignore[arg-type]
        assert live is not None
        assert live.current.rate_limit_routes == {} and live.current.log_level == "info"
        assert "strata_live_settings_rejected_total 1.0" in client.get("/metrics").text
        with pytest.raises(UnknownRoutes, match=re.escape(repr(TYPO))):
            live.apply(document)  # and while it runs


@pytest.mark.parametrize(
    "script", ["strata", "strata-write-api", "strata-read-api", "strata-bff-web"]
)
def test_the_console_scripts_refuse_an_unknown_route_in_one_line_before_serving(
    script: str, tmp_path: Path
) -> None:
    program = entry_point(script)
    assert program, f"{script} is not installed"
    env = {
        "PATH": os.environ["PATH"],
        "STRATA_DATA_DIR": str(tmp_path),
        "STRATA_RATE_LIMIT_ROUTES": json.dumps({TYPO: "2/minute"}),
        **{variable: str(free_port()) for variable in PORTS},
    }
    done = run_cli(program, env)
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"{script}: invalid settings: rate_limit_routes")
    assert f"'{TYPO}' in this service; its routes: " in line
    assert "Traceback" not in done.stdout + done.stderr
