"""`strata-identity` as operators and clients meet it: real processes over HTTP, its database
on PostgreSQL, sign-up through a real users write service, the CLI beside the running server,
and a key rotation that no verifier notices."""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tests.support.identity import PASSWORD, kid_of, sign_in, sign_up
from tests.support.postgres import require_postgres, scratch_databases
from tests.support.processes import entry_point, free_port, running_service
from tests.support.servers import wait_until

IDENTITY = entry_point("strata-identity")
WRITE_API = entry_point("strata-write-api")


@pytest.fixture(scope="module")
def identity_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A users write service running, and the environment of identity processes using it."""
    data = tmp_path_factory.mktemp("identity")
    identity_port = free_port()  # the users service trusts the keys of the identity to come
    users_env = {
        "STRATA_DATA_DIR": str(data / "var"),
        "STRATA_JWKS_URL": f"http://127.0.0.1:{identity_port}/jwks.json",
    }
    with (
        running_service(WRITE_API, users_env, "STRATA_PORT") as (users_url, _),
        scratch_databases(require_postgres(), "identity") as urls,
    ):
        yield {
            "STRATA_IDENTITY_PORT": str(identity_port),
            "STRATA_IDENTITY_DATABASE_URL": urls["identity"],
            "STRATA_WRITE_URLS": f"users={users_url}",
            "STRATA_IDENTITY_PASSWORD_PROFILE": "CHEAPEST",
            "STRATA_IDENTITY_ACCESS_TOKEN_SECONDS": "60",
        }


@pytest.fixture(scope="module")
def identity_url(identity_env: dict[str, str]) -> Iterator[str]:
    port = int(identity_env["STRATA_IDENTITY_PORT"])
    with running_service(
        IDENTITY, identity_env, "STRATA_IDENTITY_PORT", port=port, args=["serve"]
    ) as (base, _):
        yield base


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    assert IDENTITY is not None
    return subprocess.run(
        [IDENTITY, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class CachingVerifier:
    """A verifier as the services are told to be: it caches the JWKS and fetches it again only
    when a token names a `kid` it does not know."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.fetches = 0
        self.keys = self._fetch()

    def _fetch(self) -> KeySet:
        self.fetches += 1
        return KeySet.import_key_set(httpx.get(f"{self.base}/jwks.json").json())

    def verify(self, token: str) -> dict[str, object]:
        if all(key.kid != kid_of(token) for key in self.keys):
            self.keys = self._fetch()
        return dict(jwt.decode(token, self.keys, algorithms=["ES256"]).claims)


def test_a_user_signs_up_and_in_against_the_running_process(identity_url: str) -> None:
    with httpx.Client(base_url=identity_url) as client:
        signed_up = sign_up(client, key="e2e-sign-up-1")
        assert signed_up.status_code == 201, signed_up.text
        again = sign_up(client, key="e2e-sign-up-1", email=signed_up.json()["email"])
        assert again.json() == signed_up.json()
        token = sign_in(client, signed_up.json()["email"]).json()["access_token"]
        claims = CachingVerifier(identity_url).verify(token)
        assert claims["sub"] == signed_up.json()["user_id"]
        discovery = client.get("/.well-known/openid-configuration").json()
        assert discovery["jwks_uri"].endswith("/jwks.json")
        assert client.get("/readyz").status_code == 200


def test_a_client_made_by_the_cli_signs_in_with_the_secret_shown_once(
    identity_url: str, identity_env: dict[str, str]
) -> None:
    made = cli(
        identity_env, "clients", "create", "saga-e2e", "--role", "service",
        "--scope", "payments:write orders:write", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    secret = json.loads(made.stdout)["secret"]
    form = {"grant_type": "client_credentials", "client_id": "saga-e2e", "client_secret": secret}
    answer = httpx.post(f"{identity_url}/token", data=form)
    assert answer.status_code == 200, answer.text
    claims = CachingVerifier(identity_url).verify(answer.json()["access_token"])
    assert claims["scope"] == "payments:write orders:write"

    taken = cli(identity_env, "clients", "create", "saga-e2e", "--role", "service")
    assert (taken.returncode, taken.stdout) == (1, "")
    assert "exists already" in taken.stderr
    bad_role = cli(identity_env, "clients", "create", "x", "--role", "admin")
    assert bad_role.returncode == 2
    assert len(bad_role.stderr.strip().splitlines()) == 1


def test_a_key_rotation_fails_no_verification(
    identity_url: str, identity_env: dict[str, str]
) -> None:
    """Tokens issued before, during and after a CLI rotation all verify with a caching verifier;
    the old kid stays published, and new tokens carry the new one."""
    with httpx.Client(base_url=identity_url) as client:
        email = sign_up(client).json()["email"]
        verifier = CachingVerifier(identity_url)
        before = [sign_in(client, email).json()["access_token"] for _ in range(3)]
        rotated = cli(identity_env, "keys", "rotate")
        assert rotated.returncode == 0, rotated.stderr
        new_kid = rotated.stdout.split()[1]
        during: list[str] = []

        def signs_with_the_new_key() -> bool:  # at once, or from the next second
            during.append(sign_in(client, email).json()["access_token"])
            return kid_of(during[-1]) == new_kid

        wait_until(signs_with_the_new_key, 5, "a token signed by the new key")
        after = [sign_in(client, email).json()["access_token"] for _ in range(3)]
        failures = []
        for token in before + during + after:
            try:
                verifier.verify(token)
            except JoseError as error:
                failures.append(error)
        assert failures == []
        assert {kid_of(token) for token in after} == {new_kid}
        published = {key["kid"] for key in client.get("/jwks.json").json()["keys"]}
        assert {kid_of(before[0]), new_kid} <= published
        assert verifier.fetches == 2  # once at the start, once for the new kid


def test_operators_rotate_over_http_with_a_dev_token(
    identity_url: str, identity_env: dict[str, str]
) -> None:
    made = cli(identity_env, "dev-token")
    assert made.returncode == 0, made.stderr
    operator = {"Authorization": f"Bearer {made.stdout.strip()}"}
    rotated = httpx.post(f"{identity_url}/keys/rotate", headers=operator)
    assert rotated.status_code == 201, rotated.text
    body = {"user_id": "not-a-uuid", "password": PASSWORD}
    refused = httpx.post(f"{identity_url}/accounts", json=body, headers=operator)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"


def test_bad_settings_stop_the_process_with_one_line(tmp_path: Path) -> None:
    bad = cli({"STRATA_IDENTITY_BOOTSTRAP_CLIENTS": "[{]"}, "keys", "rotate")
    assert bad.returncode != 0
    assert "STRATA_IDENTITY_BOOTSTRAP_CLIENTS" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [("keys", "rotate"), ("clients", "create", "a-client", "--role", "service"), ("dev-token",)],
)
def test_a_database_that_does_not_answer_fails_a_command_with_one_line(
    args: tuple[str, ...],
) -> None:
    down = {"STRATA_IDENTITY_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/strata_identity"}
    failed = cli(down, *args)
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.startswith("strata-identity: the identity database (PostgreSQL) failed")
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr


def test_a_client_scoped_to_no_registered_context_is_refused_with_one_line() -> None:
    refused = cli({}, "clients", "create", "typo", "--role", "service", "--scope", "paymnets:write")
    assert refused.returncode == 2
    assert "no context 'paymnets'" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
