"""Command bodies: JSON only (415 otherwise) and bounded in size (413), before any store call."""

import re
import uuid

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response

from runtime.http.lean_route import LeanRoute
from runtime.http.request_bodies import DEFAULT_MAX_BODY_BYTES, is_json
from tests.support.api import assert_problem, register, store_state, unique_email

JSON = {"Content-Type": "application/json"}


def register_body() -> str:
    return f'{{"name": "Ada", "email": "{unique_email()}"}}'


def assert_unsupported(client: TestClient, headers: dict[str, str], *fragments: str) -> Response:
    """A valid registration sent with `headers` is a 415 naming `fragments`; nothing stored."""
    before = store_state(client)
    response: Response = client.post("/users", content=register_body(), headers=headers)
    assert_problem(response, 415, *fragments)
    assert response.json()["type"] == "/problems/unsupported-media-type"
    assert store_state(client) == before
    return response


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "json",
        "",
    ],
)
def test_a_command_body_that_is_not_json_is_415_and_changes_nothing(
    client: TestClient, content_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    assert_unsupported(client, headers, "application/json")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/merge-patch+json",
    ],
)
def test_json_media_types_are_accepted(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/users", content=register_body(), headers={"Content-Type": content_type}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-16",
        "application/json; charset=latin-1",
        'application/json; charset="iso-8859-1"',
        "application/json; charset=utf-8; charset=utf-16",
        "application/merge-patch+json; Charset=UTF-32",
    ],
)
def test_a_json_body_in_another_charset_is_415_and_changes_nothing(
    client: TestClient, content_type: str
) -> None:
    assert_unsupported(client, {"Content-Type": content_type}, "UTF-8", "charset=")


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"', "Utf-8"])
def test_a_utf_8_charset_in_any_case_is_accepted(client: TestClient, charset: str) -> None:
    headers = {"Content-Type": f"application/json; charset={charset}"}
    assert client.post("/users", content=register_body(), headers=headers).status_code == 201


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate", "identity, gzip", "x-unknown"])
def test_a_content_coded_body_is_415_and_changes_nothing(client: TestClient, coding: str) -> None:
    """A body said to be gzip is not read as plain: refused, with the codings taken (none)."""
    response = assert_unsupported(client, {**JSON, "Content-Encoding": coding}, "content-coded")
    assert response.headers["accept-encoding"] == "identity"


def test_an_identity_content_coding_is_accepted(client: TestClient) -> None:
    headers = {**JSON, "Content-Encoding": "Identity"}
    assert client.post("/users", content=register_body(), headers=headers).status_code == 201


def test_a_command_without_a_body_needs_no_content_type(client: TestClient) -> None:
    user = register(client)
    assert client.post(f"/users/{user}/deactivate").status_code == 200


STRAY_BODIES = [
    b"xx",
    b'{"a": 1, "a": 2}',
    b'{"x": 1}',
    b"[]",
    b'"x"',
    b"null",
    b"0",
    b"{} x",
    b"{",
    b" ",
    b"\xff",
]


def bodiless_command_paths(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every command route of the app that takes no body, ids filled in."""
    found = []
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route = context.original_route
        if not isinstance(route, LeanRoute) or route.body_field is not None:
            continue
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), context.path or "")
        found += [(method, path) for method in sorted(context.methods or ()) if method != "GET"]
    return found


@pytest.mark.parametrize("body", STRAY_BODIES, ids=ascii)
def test_every_command_that_takes_no_body_refuses_one(client: TestClient, body: bytes) -> None:
    """A body other than `{}` sent to a command without one is a 422 on `body`, before the
    command runs (the ids name nothing: it is refused before they are looked up)."""
    commands = bodiless_command_paths(client)
    paths = {re.sub(r"[0-9a-f-]{36}", "{id}", path) for _, path in commands}
    assert {"/users/{id}/deactivate", "/payments/{id}/capture", "/orders/{id}/place"} <= paths
    before = store_state(client)
    for method, path in commands:
        response = client.request(method, path, content=body, headers=JSON)
        errors = assert_problem(response, 422, "body")["errors"]
        assert [error["field"] for error in errors] == ["body"], (method, path)
        assert "takes no body" in errors[0]["message"]
    assert store_state(client) == before


@pytest.mark.parametrize("body", [b'{"a":1,"a":2}', b"xx", b'{"active": false}'], ids=ascii)
def test_a_deactivation_with_a_body_deactivates_nothing(client: TestClient, body: bytes) -> None:
    user = register(client)
    response = client.post(f"/users/{user}/deactivate", content=body, headers=JSON)
    assert_problem(response, 422, "body")
    assert client.get(f"/users/{user}").json()["active"] is True


@pytest.mark.parametrize("body", [b"", b"{}", b" {\n} "], ids=ascii)
def test_a_command_that_takes_no_body_takes_an_empty_object(
    client: TestClient, body: bytes
) -> None:
    user = register(client)
    response = client.post(f"/users/{user}/deactivate", content=body, headers=JSON)
    assert response.status_code == 200, response.text


def test_a_body_over_the_limit_is_413_and_changes_nothing(client: TestClient) -> None:
    before = store_state(client)
    padding = "x" * DEFAULT_MAX_BODY_BYTES
    body = f'{{"name": "{padding}", "email": "{unique_email()}"}}'
    response = client.post("/users", content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 413, str(DEFAULT_MAX_BODY_BYTES))
    assert response.json()["type"] == "/problems/content-too-large"
    assert store_state(client) == before


def test_a_streamed_body_over_the_limit_is_413(client: TestClient) -> None:
    """No Content-Length (chunked): the limit is enforced while reading."""
    before = store_state(client)

    def chunks() -> object:
        yield b'{"name": "'
        for _ in range(DEFAULT_MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'", "email": "a@example.com"}'

    response = client.post("/users", content=chunks(), headers={"Content-Type": "application/json"})
    assert_problem(response, 413)
    assert store_state(client) == before


def test_a_body_just_under_the_limit_reaches_validation(client: TestClient) -> None:
    padding = "x" * (DEFAULT_MAX_BODY_BYTES - 100)
    body = f'{{"name": "{padding}", "email": "{unique_email()}"}}'
    response = client.post("/users", content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 422, "body.name")


def test_queries_are_not_gated(client: TestClient) -> None:
    user = register(client)
    response = client.request(
        "GET",
        f"/users/{user}",
        content=b"x" * 2 * DEFAULT_MAX_BODY_BYTES,
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text


def test_json_is_application_json_or_a_json_suffix() -> None:
    assert is_json("application/problem+json")
    assert is_json(" application/json ;charset=utf-8")
    assert not is_json("text/json")
    assert not is_json("application/json-seq")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"name": "\xff", "email": "a@example.com"}', "not valid UTF-8"),
        (b"[" * 20_000 + b"]" * 20_000, "nested too deeply"),
        # Python reads integers of at most 4300 digits (sys.get_int_max_str_digits)
        (b'{"name": "x", "email": "a@example.com", "n": ' + b"9" * 5000 + b"}", "4300 digits"),
        # a syntax error names where reading stopped, not a field "body.41"
        (b'{"name": "x", "email": "a@example.com"} and more', "Extra data at character 40"),
        (b'{"name": ', "not a JSON document: Expecting value at character 9"),
    ],
)
def test_a_body_that_cannot_be_decoded_is_a_422_on_the_body(
    client: TestClient, body: bytes, message: str
) -> None:
    before = store_state(client)
    response = client.post("/users", content=body, headers={"Content-Type": "application/json"})
    problem = assert_problem(response, 422, "body")
    assert problem["errors"][0]["field"] == "body"
    assert message in problem["errors"][0]["message"]
    assert store_state(client) == before


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_a_body_in_another_encoding_than_utf_8_is_refused(
    client: TestClient, encoding: str
) -> None:
    """JSON between systems is UTF-8 (RFC 8259); Python's `json` would read these."""
    before = store_state(client)
    body = '{"name": "Ada", "email": "ada@example.com"}'.encode(encoding)
    response = client.post("/users", content=body, headers={"Content-Type": "application/json"})
    problem = assert_problem(response, 422, "body")
    assert problem["errors"][0]["field"].startswith("body")
    assert store_state(client) == before
