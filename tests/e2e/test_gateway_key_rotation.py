"""A signing-key rotation through the real Envoy and a real identity service: no request fails.

Envoy rereads identity's JWKS on a timer only (it does not refetch on an unknown `kid`), so
identity publishes a new key `PUBLISH_AHEAD` seconds before it signs with it, longer than
Envoy's cache (`JWKS_CACHE`). A stream of requests, each with a fresh token, crosses the
rotation: every one passes the gateway, and the tokens change `kid` on the way. The stack and
compose keep the same order of durations (90 s ahead of a 60 s cache: contexts/deployment.py)."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.filters import TokenBucket
from tests.support.gateway import RecordingServer, loopback_gateway, running_gateway
from tests.support.identity import kid_of
from tests.support.processes import entry_point, running_service
from tests.support.servers import wait_until

IDENTITY = entry_point("strata-identity")
SECRET = "rotation-operator-secret"
PUBLISH_AHEAD = 4
JWKS_CACHE = 1.0
AMPLE = TokenBucket(max_tokens=100_000, tokens_per_fill=100_000, fill_seconds=1)


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    clients = f'[{{"client_id": "operator", "role": "operator", "secret": "{SECRET}"}}]'
    env = {
        "STRATA_DATA_DIR": str(tmp_path_factory.mktemp("identity")),
        "STRATA_IDENTITY_BOOTSTRAP_CLIENTS": clients,
        "STRATA_IDENTITY_KEY_PUBLISH_AHEAD_SECONDS": str(PUBLISH_AHEAD),
        "STRATA_IDENTITY_PASSWORD_PROFILE": "CHEAPEST",
    }
    with running_service(IDENTITY, env, "STRATA_IDENTITY_PORT", args=["serve"]) as (base, _):
        yield base


def operator_token(identity: str) -> str:
    form = {"grant_type": "client_credentials"}
    answer = httpx.post(f"{identity}/token", data=form, auth=("operator", SECRET), timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_a_rotation_refuses_no_request_at_the_gateway(identity: str, tmp_path: Path) -> None:
    orders = RecordingServer()
    port = int(identity.rsplit(":", 1)[1])
    gateway = loopback_gateway(port, {"write-orders": orders.port}, AMPLE, JWKS_CACHE)
    try:
        with (
            running_gateway(gateway, tmp_path) as envoy,
            httpx.Client(base_url=envoy.base, timeout=10) as client,
        ):
            first = operator_token(identity)
            rotated = httpx.post(
                f"{identity}/keys/rotate", headers={"Authorization": f"Bearer {first}"}
            )
            assert rotated.status_code == 201, rotated.text
            statuses: list[int] = []
            kids: list[str] = []

            def signs_with_a_new_key_for_a_while() -> bool:
                token = operator_token(identity)
                kids.append(kid_of(token))
                headers = {"Authorization": f"Bearer {token}"}
                statuses.append(client.get("/orders/rotation", headers=headers).status_code)
                return kids.count(kids[-1]) >= 20 and kids[-1] != kid_of(first)

            wait_until(signs_with_a_new_key_for_a_while, 60, "tokens signed by the new key")
    finally:
        orders.close()

    assert set(statuses) == {200}, [s for s in statuses if s != 200]
    assert kids.count(kids[-1]) >= 20, "the first tokens of the new key all passed"
