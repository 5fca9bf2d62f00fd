"""Rate limits in the write and read APIs (the BFFs': tests/component/test_rate_limits.py,
identity's: tests/component/identity/test_sign_in_throttle.py): counted in a real Redis or in
the app's memory; a user's limit per route, operators and service accounts by their role's,
anonymous callers by address, and a change of the live settings file taking effect in a
running write API."""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contexts.settings import Settings
from read_api.app import create_app as create_read_app
from runtime.live_settings import LiveDocument, LiveSettingsFile
from tests.support.api import assert_problem
from tests.support.auth import IDENTITY, OPERATOR
from tests.support.bff import read_database
from tests.support.read_models import require_redis, scratch_redis_database
from tests.support.servers import wait_until
from write_api.app import create_app as create_write_app

PROFILE = "GET /users/{user_id}"
PROFILE_LIMITS = {PROFILE: "2/minute"}


@pytest.fixture
def redis_url() -> Iterator[str]:
    with scratch_redis_database(require_redis()) as url:
        yield url


def write_api(tmp_path: Path, **settings: Any) -> TestClient:
    return TestClient(create_write_app(Settings(data_dir=tmp_path / "var", **settings)))


def statuses(client: TestClient, path: str, headers: dict[str, str], times: int) -> list[int]:
    return [client.get(path, headers=headers).status_code for _ in range(times)]


def test_a_user_over_a_write_service_routes_limit_gets_429(tmp_path: Path, redis_url: str) -> None:
    ada, bob = str(uuid.uuid4()), str(uuid.uuid4())
    with write_api(tmp_path, redis_url=redis_url, rate_limit_routes=PROFILE_LIMITS) as client:
        allowed = statuses(client, f"/users/{ada}", IDENTITY.user(ada), 2)
        refused = client.get(f"/users/{ada}", headers=IDENTITY.user(ada))
        others = statuses(client, f"/users/{bob}", IDENTITY.user(bob), 2)
        another_route = client.get(f"/orders/{uuid.uuid4()}", headers=IDENTITY.user(ada))

    assert allowed == [404, 404]  # no such profile, but counted
    assert_problem(refused, 429, "more than 2 per 1 minute", PROFILE)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert others == [404, 404]
    assert another_route.status_code != 429


def test_operators_and_service_accounts_have_their_roles_limits(
    tmp_path: Path, redis_url: str
) -> None:
    roles = {"operator": "4/minute", "service": "3/minute"}
    saga = IDENTITY.service("users:read")
    path = f"/users/{uuid.uuid4()}"
    with write_api(
        tmp_path, redis_url=redis_url, rate_limit_routes=PROFILE_LIMITS, rate_limit_roles=roles
    ) as client:
        operator = statuses(client, path, OPERATOR, 5)
        service = statuses(client, path, saga, 4)

    assert operator == [404] * 4 + [429]  # past the route's 2: the operator role's 4
    assert service == [404] * 3 + [429]


def test_a_role_without_limits_of_its_own_has_the_routes(tmp_path: Path) -> None:
    with write_api(tmp_path, rate_limit_routes=PROFILE_LIMITS, rate_limit_roles={}) as client:
        assert statuses(client, f"/users/{uuid.uuid4()}", OPERATOR, 3) == [404, 404, 429]


def test_anonymous_callers_of_a_write_service_count_by_address(tmp_path: Path) -> None:
    with write_api(tmp_path, rate_limit_default="2/minute") as client:
        refused = statuses(client, f"/users/{uuid.uuid4()}", {}, 3)
        probes = statuses(client, "/healthz", {}, 3)
    assert refused == [401, 401, 429]
    assert probes == [200] * 3


def test_the_read_api_limits_a_user_per_route(tmp_path: Path) -> None:
    ada = str(uuid.uuid4())
    with read_database(tmp_path) as (data_dir, _):
        settings = Settings(data_dir=data_dir, rate_limit_routes=PROFILE_LIMITS)
        with TestClient(create_read_app(settings)) as client:
            answers = statuses(client, f"/users/{ada}", IDENTITY.user(ada), 3)
    assert answers == [404, 404, 429]


def test_a_change_of_the_live_settings_file_takes_effect_in_a_running_app(
    tmp_path: Path,
) -> None:
    live_file = LiveSettingsFile(tmp_path / "live" / "write.json")
    ada = str(uuid.uuid4())
    path, headers = f"/users/{ada}", IDENTITY.user(ada)
    with write_api(tmp_path, live_settings_file=live_file.path) as client:
        before = statuses(client, path, headers, 3)
        live_file.write(LiveDocument("write", 7, {"rate_limit_routes": PROFILE_LIMITS}))

        def revision_applied() -> bool:
            return "strata_live_settings_revision 7.0" in client.get("/metrics").text

        wait_until(revision_applied, 10, "the write API applies the live settings")
        after = statuses(client, path, headers, 3)
        live_file.write(LiveDocument("write", 8, {}))  # back to the start values
        wait_until(lambda: statuses(client, path, headers, 1) == [404], 10, "the limit lifted")

    assert before == [404] * 3
    assert after == [404, 404, 429]


def test_a_forged_token_is_verified_once_though_the_limit_and_the_route_both_ask(
    tmp_path: Path,
) -> None:
    ada = str(uuid.uuid4())
    with write_api(tmp_path, rate_limit_routes=PROFILE_LIMITS) as client:
        verifier = client.app.state.authenticator.verifier  # type: ignore[attr-defined]
        verify = verifier.verify
        verified: list[str] = []

        async def counted(token: str) -> object:
            verified.append(token)
            return await verify(token)

        verifier.verify = counted
        refused = client.get(f"/users/{uuid.uuid4()}", headers={"Authorization": "Bearer x.y.z"})
        allowed = client.get(f"/users/{ada}", headers=IDENTITY.user(ada))

    assert_problem(refused, 401)
    assert allowed.status_code == 404
    assert len(verified) == 2  # once each
    assert verified[0] == "x.y.z"
