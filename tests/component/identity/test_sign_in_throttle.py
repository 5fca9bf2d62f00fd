"""Identity's hardening over HTTP, in-process, with a clock the test moves: an account's password
sign-ins locked after a few failures (429 with `Retry-After`, a backoff that doubles up to a cap,
the right password refused too while it lasts), sign-ups and token requests limited per address
(in a real Redis), and the signed-in user's password change, which signs their sessions out."""

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient

from identity.app import create_app
from identity.settings import IdentitySettings
from tests.component.identity.conftest import CurrentIdentityKeys, identity_of
from tests.support.api import assert_problem
from tests.support.identity import PASSWORD, sign_in, sign_up
from tests.support.read_models import require_redis, scratch_redis_database

WRONG = "not the password at all"
NEW_PASSWORD = "a new and longer passphrase"


@dataclass
class Clock:
    now: int

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(int(time.time()))


@pytest.fixture
def client(
    identity_settings: IdentitySettings, identity_keys: CurrentIdentityKeys, clock: Clock
) -> Iterator[TestClient]:
    settings = identity_settings.model_copy(
        update={
            "identity_sign_in_max_failures": 3,
            "identity_sign_in_lockout_seconds": 30,
            "identity_sign_in_max_lockout_seconds": 100,
            "identity_sign_in_quiet_seconds": 600,
        }
    )
    with TestClient(create_app(settings, clock=clock)) as test_client:
        identity_keys.identity = identity_of(test_client)
        yield test_client
        identity_keys.identity = None


def _fail(client: TestClient, email: str, times: int) -> list[int]:
    return [sign_in(client, email, WRONG).status_code for _ in range(times)]


def test_failures_lock_the_password_grant_and_the_right_password_waits_too(
    client: TestClient, clock: Clock
) -> None:
    email = sign_up(client).json()["email"]
    assert _fail(client, email, 3) == [401, 401, 401]

    locked = sign_in(client, email)  # the right password
    body = assert_problem(locked, 429, "too many sign-in attempts")
    assert body["type"] == "/problems/sign-in-throttled"
    assert body["error"] == "slow_down"
    assert locked.headers["retry-after"] == "30"
    clock.now += 10
    assert sign_in(client, email).headers["retry-after"] == "20"  # not counted, not extended

    clock.now += 20
    assert sign_in(client, email).status_code == 200
    assert _fail(client, email, 3) == [401, 401, 401]  # a success starts the count over
    assert sign_in(client, email).headers["retry-after"] == "30"


def test_the_backoff_doubles_up_to_its_cap_and_a_quiet_spell_resets_it(
    client: TestClient, clock: Clock
) -> None:
    email = sign_up(client).json()["email"]
    lockouts = []
    for _ in range(4):
        _fail(client, email, 3)
        lockout = int(sign_in(client, email, WRONG).headers["retry-after"])
        lockouts.append(lockout)
        clock.now += lockout
    assert lockouts == [30, 60, 100, 100]

    clock.now += 601
    _fail(client, email, 3)
    assert sign_in(client, email).headers["retry-after"] == "30"


def test_addresses_without_an_account_lock_alike(client: TestClient) -> None:
    """A lockout does not tell which addresses have an account."""
    assert _fail(client, "nobody-here@example.org", 3) == [401, 401, 401]
    assert_problem(sign_in(client, "nobody-here@example.org"), 429)


def test_other_accounts_and_grants_are_not_locked(client: TestClient) -> None:
    ada = sign_up(client).json()["email"]
    signed_in = sign_in(client, ada).json()
    grace = sign_up(client).json()["email"]
    _fail(client, ada, 3)

    assert sign_in(client, grace).status_code == 200
    refreshed = client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": signed_in["refresh_token"]}
    )
    assert refreshed.status_code == 200  # a session of the locked account stays signed in


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _change(
    client: TestClient, token: str, current: str, new: str = NEW_PASSWORD
) -> httpx.Response:
    body = {"current_password": current, "new_password": new}
    response: httpx.Response = client.post("/password", json=body, headers=_bearer(token))
    return response


def test_a_password_change_needs_the_current_one_and_signs_every_session_out(
    client: TestClient,
) -> None:
    email = sign_up(client).json()["email"]
    laptop, phone = sign_in(client, email).json(), sign_in(client, email).json()

    wrong = _change(client, laptop["access_token"], WRONG)
    assert_problem(wrong, 403, "current password is wrong")
    changed = _change(client, laptop["access_token"], PASSWORD)

    assert changed.status_code == 200, changed.text
    assert changed.json() == {"signed_out": 2}
    for session in (laptop, phone):
        form = {"grant_type": "refresh_token", "refresh_token": session["refresh_token"]}
        assert_problem(client.post("/token", data=form), 401, "revoked")
    assert_problem(sign_in(client, email), 401)
    assert sign_in(client, email, NEW_PASSWORD).status_code == 200


def test_guesses_of_the_current_password_count_against_the_throttle(client: TestClient) -> None:
    email = sign_up(client).json()["email"]
    token = sign_in(client, email).json()["access_token"]  # a stolen access token, say
    guesses = [_change(client, token, WRONG).status_code for _ in range(4)]

    assert guesses == [403, 403, 403, 429]
    assert_problem(sign_in(client, email), 429)


def test_only_a_signed_in_user_changes_a_password(client: TestClient, operator_token: str) -> None:
    no_token = client.post(
        "/password", json={"current_password": "x", "new_password": NEW_PASSWORD}
    )
    assert_problem(no_token, 401)
    assert no_token.headers["www-authenticate"] == "Bearer"
    assert_problem(_change(client, "not.a.token", PASSWORD), 401)
    assert_problem(_change(client, operator_token, PASSWORD), 403, "signed-in user")
    email = sign_up(client).json()["email"]
    token = sign_in(client, email).json()["access_token"]
    too_short = _change(client, token, PASSWORD, new="short")
    assert_problem(too_short, 422, "body.new_password")
    assert sign_in(client, email).status_code == 200  # nothing changed


@pytest.fixture
def redis_url() -> Iterator[str]:
    with scratch_redis_database(require_redis()) as url:
        yield url


def test_identity_limits_sign_ups_and_token_requests_per_address(
    identity_settings: IdentitySettings, identity_keys: CurrentIdentityKeys, redis_url: str
) -> None:
    limits = {"POST /sign-up": "2/minute", "POST /token": "3/minute"}
    settings = identity_settings.model_copy(
        update={"redis_url": redis_url, "rate_limit_routes": limits}
    )
    with TestClient(create_app(settings)) as client:
        identity_keys.identity = identity_of(client)
        sign_ups = [sign_up(client) for _ in range(3)]
        emails = [answer.json()["email"] for answer in sign_ups[:2]]
        sign_ins = [sign_in(client, email).status_code for email in [*emails, *emails]]
        identity_keys.identity = None

    assert [answer.status_code for answer in sign_ups[:2]] == [201, 201]
    assert_problem(sign_ups[2], 429, "POST /sign-up")
    assert sign_ins == [200, 200, 200, 429]  # whichever account: the address's count
