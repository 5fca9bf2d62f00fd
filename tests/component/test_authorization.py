"""Who may do what, over HTTP, in the all-in-one process (write API and read API under /read):
401 without a valid token, 403 for another user's resources or a missing scope, open health,
metrics and docs, and the explicit insecure mode."""

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from contexts.settings import Settings
from embedded.app import create_app
from runtime.auth.dev import write_dev_token
from tests.support.api import add_line, assert_problem, create_order, register
from tests.support.auth import IDENTITY, OPERATOR, Identity, bearer, new_key

PAID_ORDER_SCOPE = "orders:write"


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("authz") / "var")
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def ada(app_client: TestClient) -> str:
    return register(_as(app_client, OPERATOR))


@pytest.fixture(scope="module")
def grace(app_client: TestClient) -> str:
    return register(_as(app_client, OPERATOR), name="Grace Hopper")


def _as(client: TestClient, headers: dict[str, str]) -> TestClient:
    client.headers.clear()
    client.headers.update(headers)
    return client


def assert_unauthenticated(response: object, fragment: str, *, token_sent: bool = True) -> None:
    assert_problem(response, 401, fragment)
    challenge = response.headers["WWW-Authenticate"]  # type: ignore[attr-defined]
    assert challenge.startswith("Bearer ")
    assert ('error="invalid_token"' in challenge) is token_sent


def test_two_authorization_fields_are_refused_even_when_both_are_valid(
    app_client: TestClient, ada: str
) -> None:
    """A proxy may read the other field than this service: neither is believed."""
    client = _as(app_client, {})
    token = OPERATOR["Authorization"]
    both = [("Authorization", token), ("Authorization", token)]
    before = client.get(f"/users/{ada}", headers=OPERATOR).json()
    requests: tuple[Callable[[], httpx.Response], ...] = (
        lambda: client.get(f"/users/{ada}", headers=both),
        lambda: client.get(f"/read/users/{ada}", headers=both),
        lambda: client.put(f"/users/{ada}/name", json={"name": "Twice"}, headers=both),
    )
    for request in requests:
        response = request()
        assert_problem(response, 401, "send one Authorization field, not 2")
        assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]
    assert client.get(f"/users/{ada}", headers=OPERATOR).json() == before


def test_no_token_is_a_401_with_a_bearer_challenge(app_client: TestClient, ada: str) -> None:
    client = _as(app_client, {})
    assert_unauthenticated(client.get(f"/users/{ada}"), "needs a bearer token", token_sent=False)
    assert_unauthenticated(client.get(f"/read/users/{ada}"), "bearer token", token_sent=False)
    assert_unauthenticated(
        client.post("/users", json={"name": "X", "email": "x@example.com"}),
        "bearer token",
        token_sent=False,
    )


def test_tokens_that_prove_nothing_are_401s(app_client: TestClient, ada: str) -> None:
    stranger = Identity(new_key(IDENTITY.key.kid or ""))  # the trusted kid, another key
    unknown = Identity(new_key("no-such-kid"))
    none = IDENTITY.token().split(".")
    none[0] = "eyJhbGciOiJub25lIiwia2lkIjoidGVzdC1rZXktMSJ9"  # {"alg":"none","kid":"test-key-1"}
    cases = {
        IDENTITY.token(seconds=-120): "expired",
        stranger.token(): "signature",
        unknown.token(): "kid",
        f"{none[0]}.{none[1]}.": "ES256",
        "garbage": "compact JWS",
    }
    for token, fragment in cases.items():
        client = _as(app_client, bearer(token))
        assert_unauthenticated(client.get(f"/users/{ada}"), fragment)


def test_a_token_quoting_what_no_header_can_carry_is_still_a_401(
    app_client: TestClient, ada: str
) -> None:
    """The reason quotes the token's unchecked `kid` (or a claim): the challenge must still be
    a header (RFC 6750 §3: visible ASCII), not a 500 from encoding it."""
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "ES256", "kid": "ключ…\\", "typ": "JWT"}).encode()
    )
    token = f"{header.rstrip(b'=').decode()}.e30.AAAA"
    client = _as(app_client, bearer(token))
    for path in (f"/users/{ada}", f"/read/users/{ada}"):
        response = client.get(path)
        assert_unauthenticated(response, "ключ…")
        challenge = response.headers["WWW-Authenticate"]
        assert all(" " <= c <= "~" for c in challenge)
        assert "error_description=\"the token's kid '????" in challenge


def test_health_metrics_and_docs_stay_open(app_client: TestClient) -> None:
    client = _as(app_client, {})
    for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/read/healthz"):
        assert client.get(path).status_code == 200, path
    assert client.get("/readyz").json()["auth"] == "jwt"
    assert "strata_auth_insecure 0.0" in client.get("/metrics").text


def test_a_user_reaches_their_own_profile_only(
    app_client: TestClient, ada: str, grace: str
) -> None:
    client = _as(app_client, IDENTITY.user(ada))
    assert client.get(f"/users/{ada}").status_code == 200
    assert client.put(f"/users/{ada}/name", json={"name": "Ada King"}).status_code == 200
    assert_problem(client.get(f"/users/{grace}"), 403, "another user")
    assert_problem(client.put(f"/users/{grace}/name", json={"name": "X"}), 403, "another user")
    assert_problem(client.get(f"/read/users/{grace}"), 403, "another user")
    assert_problem(client.get("/read/users"), 403, "users:read")
    assert_problem(client.post("/users", json={"name": "N", "email": "n@example.com"}), 403)
    assert_problem(client.post(f"/users/{ada}/reactivate"), 403, "operator")


def test_a_user_commands_and_reads_their_own_orders_only(
    app_client: TestClient, ada: str, grace: str
) -> None:
    graces_order = create_order(_as(app_client, OPERATOR), grace)
    client = _as(app_client, IDENTITY.user(ada))
    own = create_order(client, ada)
    add_line(client, own, "BOOK-1", 1, "9.50")
    assert client.get(f"/orders/{own}").status_code == 200
    assert client.get("/read/orders", params={"user_id": ada}).status_code == 200

    assert_problem(client.post("/orders", json={"user_id": grace, "currency": "EUR"}), 403)
    line = {"sku": "X-1", "quantity": 1, "unit_price": "1.00"}
    assert_problem(client.post(f"/orders/{graces_order}/lines", json=line), 403, "another user")
    assert_problem(client.get(f"/orders/{graces_order}"), 403, "another user")
    assert_problem(client.get("/read/orders", params={"user_id": grace}), 403)
    assert_problem(client.get("/read/orders"), 403, "orders:read")
    assert_problem(client.post(f"/orders/{own}/pay"), 403, "orders:write")
    assert_problem(client.post(f"/orders/{uuid.uuid4()}/place"), 404)


def test_a_service_account_gets_what_its_scopes_name(app_client: TestClient, ada: str) -> None:
    order = create_order(_as(app_client, OPERATOR), ada)
    add_line(app_client, order, "BOOK-1", 1, "9.50")
    assert app_client.post(f"/orders/{order}/place").status_code == 200

    payments_only = _as(app_client, IDENTITY.service("payments:write"))
    assert_problem(payments_only.post(f"/orders/{order}/pay"), 403, "'orders:write'")
    writer = _as(app_client, IDENTITY.service(PAID_ORDER_SCOPE))
    assert_problem(writer.get(f"/orders/{order}"), 403, "'orders:read'")
    registrar = _as(app_client, IDENTITY.service("users:write"))
    assert (
        registrar.post("/users", json={"name": "Id", "email": "id@example.com"}).status_code == 201
    )


def test_the_insecure_mode_is_explicit_and_visible(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", auth="insecure")
    with TestClient(create_app(settings)) as client:
        user = register(client)
        assert client.get(f"/users/{user}").status_code == 200
        assert client.get("/readyz").json()["auth"] == "insecure"
        assert "strata_auth_insecure 1.0" in client.get("/metrics").text
        assert "strata_auth_insecure 1.0" in client.get("/read/metrics").text


def test_the_embedded_default_trusts_its_development_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRATA_JWKS_URL")
    settings = Settings(data_dir=tmp_path / "var")
    token, path = write_dev_token(settings.data_dir, settings.identity_issuer)
    assert path.read_text().strip() == token
    with TestClient(create_app(settings)) as client:
        user = register(_as(client, bearer(token)))
        assert client.get(f"/read/users/{user}", params={"wait": 5}).status_code in (200, 404)
        assert_unauthenticated(_as(client, OPERATOR).get(f"/users/{user}"), "kid")
