"""The gateway through a real Envoy: the JWT check at the edge, the public paths, the
correlation id in the access log, retries of GETs only, Envoy's own answers as problems, and
clients' `x-envoy-*` headers steering nothing.

Behind it: the embedded all-in-one process as the users write service, a recording server as
the orders write service (scripted to fail), and another as identity, serving the test key's
JWKS."""

import json
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from gateway.generate import BUCKET
from runtime.http.request_heads import MAX_TARGET_BYTES, TWO_HOSTS
from tests.support.gateway import (
    RESET,
    RecordingServer,
    RunningGateway,
    Signer,
    loopback_gateway,
    running_gateway,
)
from tests.support.processes import entry_point, running_service
from tests.support.raw_http import raw_exchange

SIGNER = Signer("gateway-test-1")
STRANGER = Signer(SIGNER.kid)
"""Another key under the same name: its tokens are forgeries."""


@pytest.fixture(scope="module")
def orders() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def envoy(
    tmp_path_factory: pytest.TempPathFactory, orders: RecordingServer
) -> Iterator[RunningGateway]:
    keys = RecordingServer({"/jwks.json": SIGNER.jwks()})
    data = {  # the backend checks the tokens again, against the same keys
        "STRATA_DATA_DIR": str(tmp_path_factory.mktemp("embedded")),
        "STRATA_JWKS_URL": f"http://127.0.0.1:{keys.port}/jwks.json",
    }
    try:
        with running_service(entry_point("strata"), data, "STRATA_PORT") as (users, _):
            ports = {"write-users": int(users.rsplit(":", 1)[1]), "write-orders": orders.port}
            gateway = loopback_gateway(keys.port, ports, BUCKET)
            with running_gateway(gateway, tmp_path_factory.mktemp("envoy")) as running:
                yield running
    finally:
        keys.close()


@pytest.fixture
def client(envoy: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=envoy.base, timeout=10) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/unauthenticated"


def test_without_a_token_the_request_is_refused_at_the_edge(
    client: httpx.Client, orders: RecordingServer
) -> None:
    response = client.get("/orders/no-token")

    assert_unauthenticated(response)
    assert response.json()["detail"] == "Jwt is missing"
    assert orders.received("GET", "/orders/no-token") == []


SPOILED = {
    "forged": STRANGER.token,
    "expired": lambda: SIGNER.token(iat=int(time.time()) - 900, exp=int(time.time()) - 600),
    "unknown kid": lambda: SIGNER.token(kid="gateway-test-unknown"),
    "another issuer": lambda: SIGNER.token(iss="http://elsewhere.example"),
    "another audience": lambda: SIGNER.token(aud="not-strata"),
    "not a JWT": lambda: "not.a.jwt",
}


@pytest.mark.parametrize("spoiled", SPOILED.values(), ids=SPOILED.keys())
def test_a_spoiled_token_is_refused_at_the_edge(
    client: httpx.Client, orders: RecordingServer, spoiled: Callable[[], str]
) -> None:
    path = f"/orders/{uuid.uuid4()}"

    assert_unauthenticated(client.get(path, headers=bearer(spoiled())))
    assert orders.received("GET", path) == []


def test_a_valid_token_reaches_the_service_and_the_access_log_has_the_correlation_id(
    client: httpx.Client, envoy: RunningGateway
) -> None:
    sub = str(uuid.uuid4())
    correlation = f"gateway-test-{uuid.uuid4()}"
    operator = SIGNER.token(sub=sub, roles=["operator"])
    headers = {**bearer(operator), "X-Correlation-Id": correlation}
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"

    created = client.post("/users", json={"name": "Ada", "email": email}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.headers["x-correlation-id"] == correlation
    read = client.get(f"/users/{created.json()['id']}", headers=headers)
    assert read.status_code == 200
    assert read.json()["email"] == email

    line = envoy.logged(correlation_id=correlation, method="POST")
    assert (line["path"], line["status"], line["upstream"]) == ("/users", 201, "write-users")
    assert line["subject"] == sub
    assert line["request_id"] not in ("", None, "-")


def test_the_token_and_a_generated_correlation_id_are_forwarded(
    client: httpx.Client, orders: RecordingServer
) -> None:
    token = SIGNER.token()

    assert client.get("/orders/forwarded", headers=bearer(token)).status_code == 200

    [forwarded] = orders.received("GET", "/orders/forwarded")
    assert forwarded.headers["authorization"] == f"Bearer {token}"
    assert forwarded.headers["x-correlation-id"] == forwarded.headers["x-request-id"]


@pytest.mark.parametrize(
    "sent",
    [[], ["203.0.113.7"], ["203.0.113.7, 198.51.100.2"], ["203.0.113.7", "198.51.100.2"]],
    ids=["none", "one", "a chain", "twice"],
)
def test_the_forwarded_address_is_the_peers_alone(
    client: httpx.Client, orders: RecordingServer, sent: list[str]
) -> None:
    """Never the client's `X-Forwarded-For` with the peer appended: the services believe the
    gateway's hops, and would read the client's own value past it."""
    path = f"/orders/{uuid.uuid4()}"
    headers = [("Authorization", f"Bearer {SIGNER.token()}")]

    response = client.get(path, headers=[*headers, *(("X-Forwarded-For", a) for a in sent)])

    assert response.status_code == 200, response.text
    [forwarded] = orders.received("GET", path)
    assert forwarded.headers["x-forwarded-for"] == "127.0.0.1"


def test_a_dot_segment_hobby_is_refused_and_one_stored_before_is_named_with_a_space(
    client: httpx.Client,
) -> None:
    """Envoy normalizes paths (`%2E%2E` is `..`, removed with the segment before it), so a
    hobby `..` could never be removed through it: it is refused when added. One stored before
    is named as ` ..` (`%20%2E%2E`, trimmed by the service): the service's 409 names it."""
    headers = bearer(SIGNER.token(roles=["operator"]))
    email = f"dots-{uuid.uuid4().hex[:8]}@example.com"
    user = client.post("/users", json={"name": "Ada", "email": email}, headers=headers).json()["id"]

    added = client.post(f"/users/{user}/hobbies", json={"hobby": ".."}, headers=headers)
    removed = client.delete(f"/users/{user}/hobbies/%20%2E%2E", headers=headers)

    assert added.status_code == 422, added.text
    assert [e["field"] for e in added.json()["errors"]] == ["body.hobby"]
    assert client.get(f"/users/{user}", headers=headers).json()["version"] == 1
    assert (removed.status_code, removed.json()["detail"]) == (
        409,
        "hobby '..' is not in the profile",
    )


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_the_scheme_is_taken_in_any_case_and_forwarded_as_bearer(
    client: httpx.Client, orders: RecordingServer, scheme: str
) -> None:
    token, path = SIGNER.token(), f"/orders/{uuid.uuid4()}"

    response = client.get(path, headers={"Authorization": f"{scheme} {token}"})

    assert response.status_code == 200, response.text
    [forwarded] = orders.received("GET", path)
    assert forwarded.headers["authorization"] == f"Bearer {token}"


def test_a_token_in_the_query_string_is_refused_and_kept_out_of_the_access_log(
    client: httpx.Client, orders: RecordingServer, envoy: RunningGateway
) -> None:
    token, path = SIGNER.token(), f"/orders/{uuid.uuid4()}"
    correlation = f"gateway-test-{uuid.uuid4()}"

    response = client.get(
        path, params={"access_token": token}, headers={"X-Correlation-Id": correlation}
    )

    assert_unauthenticated(response)
    assert response.json()["detail"] == "Jwt is missing"
    assert response.json()["instance"] == path  # nor is it echoed
    assert token not in response.text
    assert orders.received("GET", path) == []
    line = envoy.logged(correlation_id=correlation)
    assert line["path"] == path
    assert token not in json.dumps(envoy.log_lines())


def test_a_get_is_retried_when_the_service_drops_it(
    client: httpx.Client, orders: RecordingServer
) -> None:
    orders.script("GET", "/orders/flaky", RESET)

    response = client.get("/orders/flaky", headers=bearer(SIGNER.token()))

    assert response.status_code == 200
    assert len(orders.received("GET", "/orders/flaky")) == 2


def test_a_gets_503_is_an_answer_not_retried(client: httpx.Client, orders: RecordingServer) -> None:
    """A read's 503 `position-not-reached` has waited its `wait` already: sent again, it would
    wait it again (three times over, past the route's timeout) and spend the caller's limit."""
    orders.script("GET", "/orders/behind", 503)

    response = client.get("/orders/behind", headers=bearer(SIGNER.token()))

    assert response.status_code == 503
    assert len(orders.received("GET", "/orders/behind")) == 1


def test_a_request_target_over_the_services_limit_reaches_the_service(
    client: httpx.Client, orders: RecordingServer
) -> None:
    """Envoy holds a target to its 60 KiB of head only: one over the services' 8 KiB is theirs
    to refuse (a 414, tests/component/test_request_heads.py)."""
    path = "/orders/" + "a" * MAX_TARGET_BYTES

    response = client.get(path, headers=bearer(SIGNER.token()))

    assert response.status_code == 200
    assert len(orders.received("GET", path)) == 1


def test_a_post_is_never_retried(client: httpx.Client, orders: RecordingServer) -> None:
    orders.script("POST", "/orders/flaky/cancel", 503)

    response = client.post("/orders/flaky/cancel", json={}, headers=bearer(SIGNER.token()))

    assert response.status_code == 503
    assert len(orders.received("POST", "/orders/flaky/cancel")) == 1


def test_public_paths_need_no_token_and_identity_is_reached_under_its_prefix(
    client: httpx.Client,
) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    keys = client.get("/identity/jwks.json")
    assert keys.status_code == 200
    assert keys.json() == SIGNER.jwks()
    assert_unauthenticated(client.get("/identity/keys/rotate"))


def test_an_unrouted_path_and_a_service_that_is_down_are_problems(client: httpx.Client) -> None:
    headers = bearer(SIGNER.token())

    missing = client.get("/nowhere?page=2", headers=headers)
    down = client.get("/payments/p1", headers=headers)

    assert missing.status_code == 404
    assert missing.json() == {
        "type": "/problems/not-found",
        "title": "Not found",
        "status": 404,
        "detail": "no service answers this path",
        "instance": "/nowhere",
    }
    assert down.status_code == 503
    assert down.headers["content-type"] == "application/problem+json"
    assert down.json()["instance"] == "/payments/p1"


UNREADABLE = {
    "Content-Length with chunked": (
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "http1.content_length_and_chunked_not_allowed",
    ),
    "an underscore in a header name": (
        b"X_Forwarded: 1\r\n\r\n",
        400,
        "http1.unexpected_underscore",
    ),
    "a control character in a header": (b"X-A: a\x01b\r\n\r\n", 400, "http1.invalid_characters"),
    "headers of 100 kB": (
        b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        431,
        "http1.headers_too_large",
    ),
    "two Host fields": (b"Host: y\r\n\r\n", 400, TWO_HOSTS.detail),
    "two Host fields of one value": (b"host: x\r\n\r\n", 400, TWO_HOSTS.detail),
    "a websocket upgrade": (
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        403,
        "upgrade_failed",
    ),
}


@pytest.mark.parametrize(("tail", "status", "detail"), UNREADABLE.values(), ids=UNREADABLE.keys())
def test_a_request_envoy_refuses_by_itself_gets_a_problem_naming_why(
    envoy: RunningGateway, tail: bytes, status: int, detail: str
) -> None:
    line, headers, body = raw_exchange(
        envoy.base, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + tail
    )

    assert line.split(" ")[1] == str(status), line
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert (problem["status"], problem["detail"]) == (status, detail)
    assert problem.get("instance") in (None, "/healthz")  # absent when the line was unread


def test_an_http_1_0_client_is_answered(envoy: RunningGateway, orders: RecordingServer) -> None:
    path = f"/orders/{uuid.uuid4()}"
    request = f"GET {path} HTTP/1.0\r\nAuthorization: Bearer {SIGNER.token()}\r\n\r\n"

    line, _, _ = raw_exchange(envoy.base, request.encode())

    assert line.startswith("HTTP/1.0 200"), line
    assert len(orders.received("GET", path)) == 1


STEERING = {
    "x-envoy-retry-on": "5xx,reset,retriable-status-codes",
    "x-envoy-retriable-status-codes": "503",
    "x-envoy-max-retries": "3",
    "x-envoy-upstream-rq-timeout-ms": "1",
    "x-envoy-upstream-rq-per-try-timeout-ms": "1",
    "x-envoy-hedge-on-per-try-timeout": "true",
}
"""Request headers by which Envoy lets an internal client steer its retries and timeouts."""


def test_a_clients_x_envoy_headers_steer_nothing_and_reach_no_service(
    client: httpx.Client, orders: RecordingServer
) -> None:
    """To the gateway every client is external (`use_remote_address`, no internal addresses,
    loopback included): Envoy neither honours its `x-envoy-*` headers nor passes them on. Were
    they honoured (an `internal_address_config` naming loopback, or an empty one, which Envoy
    reads as RFC 1918 and loopback), the request would be cut at 1 ms (a 504) or its 503
    retried."""
    path = f"/orders/{uuid.uuid4()}"
    orders.script("GET", path, 503)

    response = client.get(path, headers={**bearer(SIGNER.token()), **STEERING})

    assert response.status_code == 503, response.text
    [forwarded] = orders.received("GET", path)
    assert not STEERING.keys() & forwarded.headers.keys()
    assert forwarded.headers["x-envoy-external-address"] == "127.0.0.1"
    expected = forwarded.headers["x-envoy-expected-rq-timeout-ms"]  # the route's timeout
    assert expected != STEERING["x-envoy-upstream-rq-timeout-ms"]
