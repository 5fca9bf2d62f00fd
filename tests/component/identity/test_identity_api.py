"""The identity service over HTTP, in-process: sign-up through the real users service, the
token endpoint's three grants, refresh rotation, client credentials, operators, discovery."""

import base64
import uuid

import httpx
from fastapi.testclient import TestClient

from tests.component.identity.conftest import SAGA_SECRET, identity_of
from tests.support.api import assert_problem
from tests.support.identity import (
    PASSWORD,
    claims,
    kid_of,
    row_counts,
    sign_in,
    sign_up,
)
from tests.support.servers import wait_until


def test_a_user_signs_up_then_signs_in_with_a_token_of_their_profile(
    identity_client: TestClient, users_url: str, operator_token: str
) -> None:
    signed_up = sign_up(identity_client, email="Grace@Example.org")
    assert signed_up.status_code == 201, signed_up.text
    user_id = signed_up.json()["user_id"]
    operator = {"Authorization": f"Bearer {operator_token}"}
    profile = httpx.get(f"{users_url}/users/{user_id}", headers=operator)
    assert profile.json()["email"] == "Grace@example.org"

    answer = sign_in(identity_client, "grace@example.org")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["refresh_token"]
    verified = claims(identity_client, body["access_token"])
    assert verified["sub"] == user_id
    assert verified["roles"] == ["user"]
    assert verified["aud"] == "strata"
    assert verified["iss"] == "http://127.0.0.1:8200"
    assert verified["exp"] - verified["iat"] == 300


def test_a_sign_up_retried_with_its_key_creates_nothing_more(
    identity_client: TestClient,
) -> None:
    key = str(uuid.uuid4())
    first = sign_up(identity_client, key, email="retry@example.org")
    counts = row_counts(identity_of(identity_client))
    again = sign_up(identity_client, key, email="retry@example.org")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert row_counts(identity_of(identity_client)) == counts

    other = sign_up(identity_client, key, email="someone-else@example.org")
    assert_problem(other, 422, "Idempotency-Key")
    wrong_password = sign_up(identity_client, key, email="retry@example.org", password="x" * 12)
    assert_problem(wrong_password, 422, "Idempotency-Key")
    assert row_counts(identity_of(identity_client)) == counts


def test_an_address_with_an_account_cannot_sign_up_again(identity_client: TestClient) -> None:
    sign_up(identity_client, email="twice@example.org")
    counts = row_counts(identity_of(identity_client))
    assert_problem(sign_up(identity_client, email="TWICE@example.org"), 409, "has an account")
    assert row_counts(identity_of(identity_client)) == counts


def test_bad_credentials_get_one_answer_whatever_was_wrong(identity_client: TestClient) -> None:
    sign_up(identity_client, email="known@example.org")
    wrong_password = sign_in(identity_client, "known@example.org", "not the password")
    unknown_user = sign_in(identity_client, "nobody@example.org")
    not_an_address = sign_in(identity_client, "not an address")
    answers = [assert_problem(r, 401) for r in (wrong_password, unknown_user, not_an_address)]
    assert {a["error"] for a in answers} == {"invalid_grant"}
    assert len({a["detail"] for a in answers}) == 1
    assert wrong_password.headers["www-authenticate"] == "Bearer"


def test_a_refresh_token_rotates_and_its_reuse_revokes_the_sign_in(
    identity_client: TestClient,
) -> None:
    email = sign_up(identity_client).json()["email"]
    first = sign_in(identity_client, email).json()

    def refresh(token: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": token}
        response: httpx.Response = identity_client.post("/token", data=form)
        return response

    second = refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert claims(identity_client, rotated["access_token"])["roles"] == ["user"]

    reused = refresh(first["refresh_token"])
    assert_problem(reused, 401, "used before")
    assert_problem(refresh(rotated["refresh_token"]), 401)  # the whole sign-in is revoked
    assert_problem(refresh("never-issued"), 401)


def test_a_service_account_signs_in_with_its_client_credentials(
    identity_client: TestClient,
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "fulfilment",
        "client_secret": SAGA_SECRET,
    }
    answer = identity_client.post("/token", data=form)
    assert answer.status_code == 200, answer.text
    assert "refresh_token" not in answer.json()
    verified = claims(identity_client, answer.json()["access_token"])
    assert verified["sub"] == "fulfilment"
    assert verified["roles"] == ["service"]
    assert verified["scope"] == "payments:write shipping:write orders:write"

    basic = base64.b64encode(f"fulfilment:{SAGA_SECRET}".encode()).decode()
    with_basic = identity_client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert with_basic.status_code == 200, with_basic.text

    wrong = identity_client.post("/token", data={**form, "client_secret": "x" * 20})
    unknown = identity_client.post("/token", data={**form, "client_id": "nobody"})
    for refused in (wrong, unknown):
        assert assert_problem(refused, 401)["error"] == "invalid_client"


def test_only_an_operator_rotates_keys_and_old_tokens_stay_verifiable(
    identity_client: TestClient, operator_token: str
) -> None:
    email = sign_up(identity_client).json()["email"]
    user_token = sign_in(identity_client, email).json()["access_token"]

    missing = identity_client.post("/keys/rotate")
    assert_problem(missing, 401)
    assert missing.headers["www-authenticate"] == "Bearer"
    forged = identity_client.post("/keys/rotate", headers={"Authorization": "Bearer abc.def.ghi"})
    assert_problem(forged, 401)
    as_user = identity_client.post(
        "/keys/rotate", headers={"Authorization": f"Bearer {user_token}"}
    )
    assert_problem(as_user, 403)

    rotated = identity_client.post(
        "/keys/rotate", headers={"Authorization": f"Bearer {operator_token}"}
    )
    assert rotated.status_code == 201, rotated.text
    new_kid: str = rotated.json()["kid"]
    published = [key["kid"] for key in identity_client.get("/jwks.json").json()["keys"]]
    assert published == [new_kid, kid_of(user_token)]
    assert claims(identity_client, user_token)["sub"]  # still verifiable

    def signs_with_the_new_key() -> bool:  # from the next second, when rotated in the first
        token: str = sign_in(identity_client, email).json()["access_token"]
        return kid_of(token) == new_kid

    wait_until(signs_with_the_new_key, 5, "a token signed by the new key")


def test_an_operator_gives_an_existing_profile_an_account(
    identity_client: TestClient, operator_token: str, users_url: str
) -> None:
    email = f"direct-{uuid.uuid4().hex[:8]}@example.org"
    operator = {"Authorization": f"Bearer {operator_token}"}
    body = {"name": "Direct", "email": email}
    created = httpx.post(f"{users_url}/users", json=body, headers=operator)
    user_id = created.json()["id"]
    body = {"user_id": user_id.upper(), "password": PASSWORD}
    as_nobody = identity_client.post("/accounts", json=body)
    assert_problem(as_nobody, 401)

    attached = identity_client.post("/accounts", json=body, headers=operator)
    assert attached.status_code == 201, attached.text
    assert attached.json() == {"user_id": user_id, "email": email}
    token = sign_in(identity_client, email).json()["access_token"]
    assert claims(identity_client, token)["sub"] == user_id
    assert_problem(identity_client.post("/accounts", json=body, headers=operator), 409)

    unknown = {"user_id": str(uuid.uuid4()), "password": PASSWORD}
    assert_problem(identity_client.post("/accounts", json=unknown, headers=operator), 404)


def test_discovery_and_the_jwks_are_cacheable(identity_client: TestClient) -> None:
    discovery = identity_client.get("/.well-known/openid-configuration")
    assert discovery.headers["cache-control"] == "public, max-age=60"
    document = discovery.json()
    assert document["issuer"] == "http://127.0.0.1:8200"
    assert document["jwks_uri"] == "http://127.0.0.1:8200/jwks.json"
    assert document["token_endpoint"] == "http://127.0.0.1:8200/token"
    jwks = identity_client.get("/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=60"
    (key,) = jwks.json()["keys"]
    assert {key["kty"], key["crv"], key["alg"], key["use"]} == {"EC", "P-256", "ES256", "sig"}
    assert "d" not in key


def test_health_readiness_and_metrics(identity_client: TestClient) -> None:
    assert identity_client.get("/healthz").json() == {"status": "ok"}
    assert identity_client.get("/readyz").json() == {"status": "ready"}
    sign_in(identity_client, "nobody@example.org")
    metrics = identity_client.get("/metrics").text
    assert 'strata_identity_tokens_total{grant_type="password",outcome="refused"} 1.0' in metrics
    assert 'strata_http_requests_total{method="POST",route="/token",status="401"}' in metrics


def test_an_address_of_a_profile_without_account_is_the_users_service_refusal(
    identity_client: TestClient, users_url: str, operator_token: str
) -> None:
    email = f"taken-{uuid.uuid4().hex[:8]}@example.org"
    operator = {"Authorization": f"Bearer {operator_token}"}
    httpx.post(f"{users_url}/users", json={"name": "Taken", "email": email}, headers=operator)
    counts = row_counts(identity_of(identity_client))
    refused = sign_up(identity_client, email=email)
    assert assert_problem(refused, 409)["type"] == "/problems/value-taken"
    assert row_counts(identity_of(identity_client)) == counts


def test_head_is_answered_like_get(identity_client: TestClient) -> None:
    for path in ("/jwks.json", "/.well-known/openid-configuration"):
        get, head = identity_client.get(path), identity_client.head(path)
        assert get.status_code == head.status_code == 200 and get.content
        assert head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"]
