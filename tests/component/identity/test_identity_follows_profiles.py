"""The embedded mode end to end, with the users write service's SQLite store in the data directory
identity shares: a user changes their address and signs in with the new address, not the old; an
operator ends an account's lockout with `strata-identity sign-ins unlock`; a deactivated profile
does not sign in or refresh until it is reactivated."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from contexts.settings import Settings
from identity.app import create_app
from identity.main import dev_operator_token, main
from identity.settings import IdentitySettings
from tests.component.identity.conftest import CurrentIdentityKeys, identity_of
from tests.support.identity import claims, sign_in, sign_up
from tests.support.servers import wait_until
from tests.support.threaded_server import served
from write_api.app import create_app as create_write_app

WRONG = "not the password at all"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def shared_users_url(data_dir: Path, identity_keys: CurrentIdentityKeys) -> Iterator[str]:
    with served(create_write_app(Settings(data_dir=data_dir), keys=identity_keys)) as url:
        yield url


@pytest.fixture
def client(
    data_dir: Path, shared_users_url: str, identity_keys: CurrentIdentityKeys
) -> Iterator[TestClient]:
    settings = IdentitySettings(
        data_dir=data_dir,
        write_urls=f"users={shared_users_url}",
        identity_password_profile="CHEAPEST",
        identity_sign_in_max_failures=2,
    )
    with TestClient(create_app(settings)) as test_client:
        identity_keys.identity = identity_of(test_client)
        yield test_client
        identity_keys.identity = None


def change_address(users_url: str, user_id: str, token: str, email: str) -> None:
    answer = httpx.put(
        f"{users_url}/users/{user_id}/email",
        json={"email": email},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text


def change_standing(users_url: str, user_id: str, token: str, change: str) -> None:
    answer = httpx.post(
        f"{users_url}/users/{user_id}/{change}", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text


def refresh(client: TestClient, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    response: httpx.Response = client.post("/token", data=form)
    return response


def test_the_new_address_signs_in_and_the_old_one_does_not(
    client: TestClient, shared_users_url: str
) -> None:
    user_id = sign_up(client, email="ada@example.org").json()["user_id"]
    token = sign_in(client, "ada@example.org").json()["access_token"]

    change_address(shared_users_url, user_id, token, "Ada.Lovelace@example.org")

    store = identity_of(client).store
    wait_until(
        lambda: store.credential("ada.lovelace@example.org") is not None,
        10,
        "identity takes the new address in",
    )
    signed_in = sign_in(client, "Ada.Lovelace@example.org")
    assert signed_in.status_code == 200
    assert claims(client, signed_in.json()["access_token"])["sub"] == user_id
    assert sign_in(client, "ada@example.org").status_code == 401


def test_the_lockout_follows_the_account_and_an_operator_ends_it(
    client: TestClient, shared_users_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = sign_up(client, email="bob@example.org").json()["user_id"]
    token = sign_in(client, "bob@example.org").json()["access_token"]
    assert [sign_in(client, "bob@example.org", WRONG).status_code for _ in range(3)] == [
        401,
        401,
        429,
    ]

    change_address(shared_users_url, user_id, token, "robert@example.org")
    store = identity_of(client).store
    wait_until(
        lambda: store.credential("robert@example.org") is not None,
        10,
        "identity takes the new address in",
    )
    assert sign_in(client, "robert@example.org").status_code == 429
    assert sign_in(client, "bob@example.org").status_code == 401  # no account's, not locked

    monkeypatch.setenv("STRATA_DATA_DIR", str(data_dir))
    with pytest.raises(SystemExit) as exited:
        main(["sign-ins", "unlock", "Robert@example.org"])
    assert exited.value.code == 0
    assert sign_in(client, "robert@example.org").status_code == 200


def test_a_deactivated_profile_signs_in_again_only_once_reactivated(
    client: TestClient, shared_users_url: str
) -> None:
    user_id = sign_up(client, email="cleo@example.org").json()["user_id"]
    signed_in = sign_in(client, "cleo@example.org").json()
    store = identity_of(client).store

    def active() -> bool:
        credential = store.credential("cleo@example.org")
        return credential is not None and credential.active

    change_standing(shared_users_url, user_id, signed_in["access_token"], "deactivate")
    wait_until(lambda: not active(), 10, "identity takes the deactivation in")
    refused = sign_in(client, "cleo@example.org")
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the account's profile is deactivated"
    assert refresh(client, signed_in["refresh_token"]).status_code == 401
    assert sign_in(client, "cleo@example.org", WRONG).json()["detail"] != refused.json()["detail"]

    operator = dev_operator_token(identity_of(client))
    change_standing(shared_users_url, user_id, operator, "reactivate")
    wait_until(active, 10, "identity takes the reactivation in")
    assert sign_in(client, "cleo@example.org").status_code == 200
    assert refresh(client, signed_in["refresh_token"]).status_code == 401  # revoked for good
