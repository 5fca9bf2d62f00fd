"""The lean command route answers exactly as FastAPI's handler does, on the inputs that go wrong.

Each request is sent twice to the same app: once as served (the `LeanRoute` plan), once with a
dependency override of nothing in place, under which a `LeanRoute` hands its requests to
FastAPI's own handler. Status, problem body and the headers a client acts on must be equal.
The HTTP layer is what differs, not the store, so the embedded mode is enough.
"""

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from contexts.settings import Settings
from runtime.http.lean_route import LeanRoute
from runtime.http.request_bodies import DEFAULT_MAX_BODY_BYTES
from tests.support.api import register
from tests.support.auth import IDENTITY, OPERATOR, Identity, bearer
from write_api.app import create_app

JSON = {"Content-Type": "application/json"}
COMPARED_HEADERS = ("content-type", "etag", "location", "retry-after", "www-authenticate")


def _nothing() -> None:
    """Overridden by itself: no answer changes, but every LeanRoute defers to FastAPI."""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("lean")) / "var")
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def user(client: TestClient) -> str:
    client.headers.update(OPERATOR)
    try:
        return register(client)
    finally:
        del client.headers["Authorization"]


@pytest.fixture(scope="module")
def order(client: TestClient, user: str) -> str:
    response = client.post("/orders", json={"user_id": user, "currency": "EUR"}, headers=OPERATOR)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def answer(response: httpx.Response) -> dict[str, Any]:
    headers = {name: response.headers.get(name) for name in COMPARED_HEADERS}
    return {"status": response.status_code, "headers": headers, "body": response.content}


def assert_alike(
    client: TestClient,
    method: str,
    path: str,
    lines: Sequence[tuple[str, str]] = (),
    /,
    *,
    content: bytes | None = None,
    **headers: str,
) -> httpx.Response:
    """Send the request to the lean route and to FastAPI's handler; the answers must be equal.
    `lines` are header field lines sent as well, after the others (a name may repeat)."""
    fields = {"authorization": OPERATOR["Authorization"]}
    fields.update((name.replace("_", "-"), value) for name, value in headers.items())
    sent = [(name, value) for name, value in fields.items() if value]  # "": not sent
    sent += lines
    lean: httpx.Response = client.request(method, path, content=content, headers=sent)
    with deferring_to_fastapi(client):
        fastapi = client.request(method, path, content=content, headers=sent)
    assert answer(lean) == answer(fastapi)
    return lean


def rename_alike(client: TestClient, user: str, body: bytes, **headers: str) -> httpx.Response:
    """`assert_alike` of a rename of `user` with `body`, sent as JSON."""
    path = f"/users/{user}/name"
    return assert_alike(
        client, "PUT", path, content=body, content_type="application/json", **headers
    )


@contextmanager
def deferring_to_fastapi(client: TestClient) -> Iterator[None]:
    overrides = client.app.dependency_overrides  # type: ignore[attr-defined]
    overrides[_nothing] = _nothing
    try:
        yield
    finally:
        overrides.clear()


def test_the_command_routes_are_lean(client: TestClient) -> None:
    lean = {
        f"{sorted(context.methods or ())[0]} {context.path}"
        for context in iter_route_contexts(client.app.routes)  # type: ignore[attr-defined]
        if isinstance(context.original_route, LeanRoute) and context.original_route.lean
    }
    assert {"POST /users", "PUT /users/{user_id}/name", "POST /orders/{order_id}/lines"} <= lean


ODD_TEXT = [
    "\x00",
    "\x1f",
    "\x7f",
    "\x85",
    "\u200f",
    "\u2028",
    "\ud800",
    "\udfff\ud800",
    "\ufeff",
    "\ufffe",
    "\U0010ffff",
    "e\u0301",
    "\U0001f600",
    " ",
    "",
    "x" * 201,
]


@pytest.mark.parametrize("text", ODD_TEXT, ids=ascii)
def test_odd_unicode_in_a_name(client: TestClient, user: str, text: str) -> None:
    body = json.dumps({"name": text}).encode()  # ASCII, escapes as a client may send them
    rename_alike(client, user, body)
    raw = json.dumps({"name": text}, ensure_ascii=False).encode("utf-8", "surrogatepass")
    rename_alike(client, user, raw)


BAD_BODIES = [
    b"",
    b" ",
    b"{",
    b"{}x",
    b"[]",
    b'"name"',
    b"null",
    b"NaN",
    b'{"name": NaN}',
    b'{"name": 1}',
    b'{"name": "Ada", "extra": 1}',
    b'{"name": "a\x01b"}',
    b'{"name": "a\tb"}',
    b'{"name": "\xff"}',
    b'{"name": "\xed\xa0\x80"}',
    b'{"name": "Ada"',
    b'{"name": 123456789012345678901234567890}',
    b'{"name": 1e400}',
    b"[" * 20_000 + b"]" * 20_000,
    b'{"name": ' + b"[" * 500 + b"]" * 500 + b"}",
    b'{"name": "Ada L.", "name": "Ada K."}',
    b'{"n\\u0061me": "Ada L.", "name": "Ada K."}',
    b'{"name": {"a": 1, "a": 2}}',
    b'{"name": ' + b"[" * 500 + b'{"a": 1, "a": 2}' + b"]" * 500 + b"}",
    b'\xef\xbb\xbf{"name": "Ada L.", "name": "Ada K."}',
    '{"name": "Ada U."}'.encode("utf-16"),  # JSON is UTF-8 (RFC 8259), though `json` reads it
    '{"name": "Ada U."}'.encode("utf-32-le"),
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=lambda b: ascii(b[:24]))
def test_bad_json(client: TestClient, user: str, body: bytes) -> None:
    response = rename_alike(client, user, body)
    assert response.status_code in (400, 422), response.text


@pytest.mark.parametrize("body", [b"xx", b'{"a": 1, "a": 2}', b'{"x": 1}', b"[]", b"{}", b""])
def test_a_body_sent_to_a_command_without_one(client: TestClient, user: str, body: bytes) -> None:
    path = f"/users/{user}/reactivate"  # the user is active: a 409 when the command runs
    response = assert_alike(client, "POST", path, content=body, content_type="application/json")
    assert response.status_code == (422 if body.strip(b"{}") else 409), response.text


QUANTITIES = [b"1.0", b"true", b'"1"', b"1e3", b"0", b"-1", b"10" * 20, b"null", b"[]"]


@pytest.mark.parametrize("quantity", QUANTITIES, ids=ascii)
def test_strict_numbers(client: TestClient, order: str, quantity: bytes) -> None:
    body = b'{"sku": "A-1", "quantity": %s, "unit_price": "1.00"}' % quantity
    response = assert_alike(
        client, "POST", f"/orders/{order}/lines", content=body, content_type="application/json"
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("size", [DEFAULT_MAX_BODY_BYTES - 20, 4 * DEFAULT_MAX_BODY_BYTES])
def test_huge_bodies(client: TestClient, user: str, size: int) -> None:
    body = b'{"name": "' + b"x" * size + b'"}'
    response = rename_alike(client, user, body)
    assert response.status_code in (413, 422), response.text


@pytest.mark.parametrize(
    "if_match",
    ['W/"1"', '"01"', "x", '"1", "x"', " ", '"1" "2"', '*, "1"', '"' + "9" * 30 + '"'],
)
def test_bad_if_match(client: TestClient, user: str, if_match: str) -> None:
    body = b'{"name": "Grace"}'
    response = rename_alike(client, user, body, if_match=if_match)
    assert response.status_code in (400, 412), response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"idempotency_key": "has space"},
        {"idempotency_key": "k" * 201},
        {"x_correlation_id": "c" * 101},
        {"x_causation_id": "\x7f"},
    ],
    ids=lambda h: next(iter(h)),
)
def test_bad_command_headers(client: TestClient, headers: dict[str, str]) -> None:
    body = b'{"name": "Ada", "email": "ada@example.com"}'
    response = assert_alike(
        client, "POST", "/users", content=body, content_type="application/json", **headers
    )
    assert response.status_code == 400, response.text


REPEATED_FIELDS = {
    "idempotency key": [("Idempotency-Key", "A-1"), ("Idempotency-Key", "B-1")],
    "same idempotency key": [("Idempotency-Key", "A-1"), ("Idempotency-Key", "A-1")],
    "correlation id": [("X-Correlation-Id", "c-1"), ("X-Correlation-Id", "c-2")],
    "causation id": [("X-Causation-Id", "c-1"), ("X-Causation-Id", "c-2")],
    "content type": [("Content-Type", "application/json"), ("Content-Type", "text/plain")],
}


@pytest.mark.parametrize("lines", REPEATED_FIELDS.values(), ids=REPEATED_FIELDS.keys())
def test_single_value_headers_sent_twice(
    client: TestClient, user: str, lines: list[tuple[str, str]]
) -> None:
    content_type = "" if lines[0][0] == "Content-Type" else "application/json"
    response = assert_alike(
        client,
        "PUT",
        f"/users/{user}/name",
        lines,
        content=b'{"name": "Twice"}',
        content_type=content_type,
    )
    assert response.status_code in (400, 415), response.text
    assert f"send one {lines[0][0]} field, not 2" in response.json()["detail"]


OTHER_IDENTITY = Identity()
TOKENS = {
    "missing": "",
    "empty bearer": "Bearer",
    "garbage": "Bearer not-a-token",
    "basic": "Basic YWRhOmFkYQ==",
    "forged": bearer(OTHER_IDENTITY.token())["Authorization"],
    "expired": bearer(IDENTITY.token(seconds=-120))["Authorization"],
    "another user": bearer(IDENTITY.token(str(uuid.uuid4()), ["user"]))["Authorization"],
    "no role": bearer(IDENTITY.token("someone", []))["Authorization"],
}


@pytest.mark.parametrize("authorization", TOKENS.values(), ids=TOKENS.keys())
def test_missing_and_forged_tokens(client: TestClient, user: str, authorization: str) -> None:
    body = b'{"name": "Grace"}'
    response = rename_alike(client, user, body, authorization=authorization)
    assert response.status_code in (401, 403), response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/users/ABC/name", b'{"name": "Grace"}'),
        ("/users/2E31A84A-2ADE-4076-83C6-62AB586BCCDB/name", b'{"name": "Grace"}'),
        ("/users/ABC/name", b'{"name": "\\u0000"}'),
        ("/users/ABC/name", b"{"),
        (f"/users/{uuid.uuid4()}/name", b'{"name": "Grace"}'),
        (f"/users/{uuid.uuid4()}/hobbies/%00", b""),
    ],
)
def test_bad_paths_and_their_order_with_the_body(
    client: TestClient, path: str, body: bytes
) -> None:
    method = "PUT" if path.endswith("name") else "DELETE"
    content_type = "application/json" if body else ""
    response = assert_alike(client, method, path, content=body or None, content_type=content_type)
    assert response.status_code in (404, 422), response.text


def test_a_missing_token_is_answered_before_bad_json(client: TestClient, user: str) -> None:
    response = rename_alike(client, user, b"{", authorization="")
    assert response.status_code == 401


ODD_BUT_ACCEPTED = [
    b'\xef\xbb\xbf{"name": "Ada B."}',  # a UTF-8 byte-order mark, which RFC 8259 lets us ignore
]


@pytest.mark.parametrize("body", ODD_BUT_ACCEPTED, ids=lambda b: ascii(b[:12]))
def test_odd_documents_that_json_accepts(client: TestClient, user: str, body: bytes) -> None:
    response = rename_alike(client, user, body)
    assert response.status_code == 200, response.text


def test_accepted_commands_answer_alike(client: TestClient, user: str) -> None:
    """Two renames in a row: the same status and headers, the version one apart."""
    body = b'{"name": "Grace Hopper"}'
    path = f"/users/{user}/name"
    lean = client.put(path, content=body, headers={**JSON, **OPERATOR})
    with deferring_to_fastapi(client):
        fastapi = client.put(path, content=b'{"name": "Grace B."}', headers={**JSON, **OPERATOR})
    assert lean.status_code == fastapi.status_code == 200
    assert lean.headers.keys() - {"x-correlation-id"} == fastapi.headers.keys() - {
        "x-correlation-id"
    }
    assert fastapi.json()["version"] == lean.json()["version"] + 1
    assert int(fastapi.headers["etag"].strip('"')) == fastapi.json()["version"]
