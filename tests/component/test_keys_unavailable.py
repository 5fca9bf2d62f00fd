"""A service that cannot fetch the identity's keys, over HTTP: a token it cannot check is a 503
with `Retry-After` (not a 401, which would make the client throw a good token away), the next
request once the identity is back is answered, and a made-up `kid` while the keys are at hand is
a 401 that fetches them at most once per interval. The write API, the read API and a BFF alike
(`runtime.auth`); the JWKS is a real HTTP server, stopped and started again."""

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from bff.web.app import create_app as create_web_app
from contexts.settings import Settings
from read_api.app import create_app as create_read_app
from runtime.auth.jwks import RETRY_PAUSE
from tests.support.api import assert_problem
from tests.support.auth import Identity, JwksServer, bearer, new_key
from tests.support.bff import bff_settings, read_database
from tests.support.processes import free_port
from write_api.app import create_app as create_write_app

IDENTITY = Identity(new_key("keys-unavailable-1"))
OPERATOR = IDENTITY.headers(seconds=24 * 3600)  # minted at collection: the suite may take long

Service = Callable[[str], AbstractContextManager[TestClient]]


@contextmanager
def write_api(jwks_url: str, folder: Path, **settings: Any) -> Iterator[TestClient]:
    app = create_write_app(Settings(data_dir=folder / "var", jwks_url=jwks_url, **settings))
    with TestClient(app) as client:
        yield client


@contextmanager
def read_api(jwks_url: str, folder: Path) -> Iterator[TestClient]:
    with read_database(folder) as (data_dir, _):
        settings = Settings(data_dir=data_dir, jwks_url=jwks_url)
        with TestClient(create_read_app(settings)) as client:
            yield client


@contextmanager
def web_bff(jwks_url: str, _: Path) -> Iterator[TestClient]:
    settings = bff_settings(f"http://127.0.0.1:{free_port()}", jwks_url=jwks_url)
    with TestClient(create_web_app(settings)) as client:
        yield client


SERVICES = {
    "write API": (write_api, f"/users/{uuid.uuid4()}"),
    "read API": (read_api, "/users"),
    "web BFF": (web_bff, "/web/dashboard"),
}


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with JwksServer(IDENTITY.key, identity=IDENTITY).serving() as server:
        yield server


def assert_keys_unavailable(response: httpx.Response) -> None:
    assert_problem(response, 503, "the identity service's keys cannot be fetched")
    assert response.json()["type"] == "/problems/service-unavailable"
    assert 1 <= int(response.headers["Retry-After"]) <= 10
    assert "WWW-Authenticate" not in response.headers


def not_about_the_token(response: httpx.Response) -> bool:
    """Neither refused (401) nor left unchecked (the keys' 503): whatever the route answers."""
    return response.status_code != 401 and "keys" not in response.text


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_started_while_the_identity_is_down_answers_503_then_serves(
    name: str, jwks: JwksServer, tmp_path: Path
) -> None:
    """The reproduction: a service (re)started while the identity is stopped, called with a
    valid token; then the identity starts, and the next request, a retry pause later but well
    within the refetch interval (10 s), is answered."""
    start, path = SERVICES[name]
    with start(jwks.url, tmp_path) as client:
        with jwks.stopped():
            while_stopped = [client.get(path, headers=OPERATOR) for _ in range(3)]
        time.sleep(RETRY_PAUSE + 0.05)
        once_back = client.get(path, headers=OPERATOR)
    for response in while_stopped:
        assert_keys_unavailable(response)
    assert "cannot be reached" in while_stopped[0].json()["detail"]
    assert not_about_the_token(once_back), once_back.text
    if name != "web BFF":  # the BFF's read API is not there: that is its own 503
        assert once_back.status_code in (200, 404), once_back.text
    assert jwks.fetches == 1  # the stopped server counted none


def test_the_write_api_answers_503_while_the_identity_answers_5xx(
    jwks: JwksServer, tmp_path: Path
) -> None:
    path = f"/users/{uuid.uuid4()}"
    with write_api(jwks.url, tmp_path) as client:
        jwks.down = True
        down = client.get(path, headers=OPERATOR)
        command = client.post(
            "/users", json={"name": "A", "email": "a@example.com"}, headers=OPERATOR
        )
        jwks.down = False
        time.sleep(RETRY_PAUSE + 0.05)
        created = client.post(
            "/users", json={"name": "A", "email": "a@example.com"}, headers=OPERATOR
        )
    assert_keys_unavailable(down)
    assert "it answered 503" in down.json()["detail"]
    assert_keys_unavailable(command)
    assert created.status_code == 201, created.text


def test_a_kid_unknown_while_the_identity_is_down_is_503_and_known_ones_still_verify(
    jwks: JwksServer, tmp_path: Path
) -> None:
    """After a rotation the service lacks the new key; the identity is down: the new key's
    tokens cannot be checked (503), the held key's still can. (Within the refetch interval
    after a fetch that succeeded, an unknown `kid` is a 401 without fetching: the next test.)"""
    rotated = Identity(new_key("keys-unavailable-2"))
    path = f"/users/{uuid.uuid4()}"
    with write_api(jwks.url, tmp_path, jwks_refetch_seconds=1) as client:
        before = client.get(path, headers=OPERATOR)
        time.sleep(1.05)
        with jwks.stopped():
            new_key_token = client.get(path, headers=rotated.headers())
            held_key_token = client.get(path, headers=OPERATOR)
    assert before.status_code == 404
    assert_keys_unavailable(new_key_token)
    assert held_key_token.status_code == 404


def test_made_up_kids_are_503_while_the_identity_is_down_then_401_fetching_once(
    jwks: JwksServer, tmp_path: Path
) -> None:
    """While the identity is down a made-up `kid` cannot be told from a new key (503), at most
    one fetch a retry pause; once a fetch succeeded, made-up `kid`s are 401 and fetch nothing
    more within the refetch interval (10 s): spraying them does not hammer the identity."""
    path = f"/users/{uuid.uuid4()}"

    def spray(count: int) -> list[httpx.Response]:
        return [
            client.get(path, headers=bearer(Identity(new_key(f"kid-{uuid.uuid4()}")).token()))
            for _ in range(count)
        ]

    with write_api(jwks.url, tmp_path) as client:
        jwks.down = True
        while_down = spray(10)
        fetches_while_down = jwks.fetches
        jwks.down = False
        time.sleep(RETRY_PAUSE + 0.05)
        once_back = spray(20)
        good = client.get(path, headers=OPERATOR)
    for response in while_down:
        assert_keys_unavailable(response)
    assert fetches_while_down == 1  # all within the retry pause
    for response in once_back:
        assert_problem(response, 401, "is not a key of the identity service")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert good.status_code == 404
    assert jwks.fetches == 2  # one more for the first made-up kid once back, then none
