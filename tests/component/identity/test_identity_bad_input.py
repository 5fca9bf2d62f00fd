"""Bad input to the identity service: a 4xx problem+json naming what was wrong, and no row
written (odd Unicode, control characters, huge and malformed bodies, malformed forms)."""

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from identity.app import create_app
from identity.settings import IdentitySettings
from tests.component.identity.conftest import identity_of
from tests.support.api import assert_problem
from tests.support.asgi import post_scope
from tests.support.identity import (
    PASSWORD,
    row_counts,
    sign_up,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def unchanged(identity_client: TestClient) -> Iterator[TestClient]:
    """The client; the test fails if any identity table changed."""
    before = row_counts(identity_of(identity_client))
    yield identity_client
    assert row_counts(identity_of(identity_client)) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "short"}, "body.password"),
        ({"password": "x" * 257}, "body.password"),
        ({"password": "ten chars\x00 and a NUL"}, "body.password"),
        ({"password": "line\nbreak password"}, "body.password"),
        ({"password": "lone surrogate \ud800 here"}, "body.password"),
        ({"name": "Ada\u0007"}, "body.name"),
        ({"name": "   "}, "body.name"),
        ({"name": "\u0301\u0308 "}, "body.name"),
        ({"email": "not an address"}, "body.email"),
        ({"email": "ada@example.org\u0000"}, "body.email"),
        ({"unknown": "field"}, "body.unknown"),
    ],
)
def test_a_bad_sign_up_names_the_field_and_changes_nothing(
    unchanged: TestClient, body: dict[str, str], field: str
) -> None:
    problem = assert_problem(sign_up(unchanged, **body), 422)
    assert field in [error["field"] for error in problem["errors"]]


def test_a_password_keeps_every_character_it_may_have(identity_client: TestClient) -> None:
    odd = "  пароль 密码 🔑 with spaces  "
    email = sign_up(identity_client, password=odd).json()["email"]
    form = {"grant_type": "password", "username": email, "password": odd}
    assert identity_client.post("/token", data=form).status_code == 200
    trimmed = {**form, "password": odd.strip()}
    assert_problem(identity_client.post("/token", data=trimmed), 401)


@pytest.mark.parametrize(
    ("content", "headers", "status", "fragment"),
    [
        (b"grant_type=password&username=a%ZZ", FORM, 400, "not a form body"),
        (b"grant_type=password&grant_type=password", FORM, 400, "more than once"),
        (b"grant_type=password&username=%00x&password=y", FORM, 400, "U+0000"),
        (b"grant_type=password&username=%FF&password=y", FORM, 400, "not a form body"),
        ("grant_type=pässword".encode(), FORM, 400, "not a form body"),
        (b"grant_type=password&username=a", FORM, 400, "missing: password"),
        (b"username=a&password=b", FORM, 400, "missing: grant_type"),
        (b"", FORM, 400, "missing: grant_type"),
        (b"grant_type=implicit", FORM, 400, "not supported"),
        (b'{"grant_type": "password"}', {"Content-Type": "application/json"}, 415, "form"),
        (b"grant_type=password", {"Content-Type": "text/plain"}, 415, "form"),
        (b"&".join([b"a=b"] * 40), FORM, 400, "not a form body"),
    ],
)
def test_a_malformed_token_request_is_refused(
    unchanged: TestClient, content: bytes, headers: dict[str, str], status: int, fragment: str
) -> None:
    assert_problem(unchanged.post("/token", content=content, headers=headers), status, fragment)


def test_a_bad_basic_header_is_a_malformed_request(unchanged: TestClient) -> None:
    answer = unchanged.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic %%%"},
    )
    assert assert_problem(answer, 400, "Basic")["error"] == "invalid_request"


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
def test_basic_credentials_with_a_client_in_the_form_too_are_refused(
    unchanged: TestClient, field: str
) -> None:
    """One way of authenticating per request (RFC 6749 §2.3): with two, which client asked?"""
    basic = "Basic " + base64.b64encode(b"operator:secret").decode()
    answer = unchanged.post(
        "/token",
        data={"grant_type": "client_credentials", field: "fulfilment"},
        headers={"Authorization": basic},
    )
    problem = assert_problem(answer, 400, f"the form must not hold {field}")
    assert problem["error"] == "invalid_request"


def test_two_authorization_fields_are_refused(unchanged: TestClient, operator_token: str) -> None:
    """A proxy may read the other field than this service: neither is believed."""
    bearer = f"Bearer {operator_token}"
    rotate = unchanged.post(
        "/keys/rotate", headers=[("Authorization", bearer), ("Authorization", bearer)]
    )
    assert_problem(rotate, 401, "send one Authorization field, not 2")
    basic = "Basic " + base64.b64encode(b"client:secret").decode()
    token = unchanged.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=[("Authorization", basic), ("Authorization", basic)],
    )
    assert assert_problem(token, 400, "not 2")["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/sign-up", "/token"])
def test_a_huge_body_is_refused_before_it_is_read(unchanged: TestClient, path: str) -> None:
    """On the public paths; an operator's (`/accounts`) answers a caller without a token 401
    first (tests/component/test_answer_order.py)."""
    huge = b"a=" + b"x" * (1024 * 1024)
    kind = "application/x-www-form-urlencoded" if path == "/token" else "application/json"
    answer = unchanged.post(path, content=huge, headers={"Content-Type": kind})
    assert_problem(answer, 413, "at most")


@pytest.mark.parametrize("path", ["/sign-up", "/token"])
@pytest.mark.parametrize(
    ("coding", "charset"), [("gzip", None), (None, "latin-1"), (None, "UTF-16")]
)
def test_a_body_coded_or_in_another_charset_is_415(
    unchanged: TestClient, path: str, coding: str | None, charset: str | None
) -> None:
    kind = "application/x-www-form-urlencoded" if path == "/token" else "application/json"
    headers = {"Content-Type": f"{kind}; charset={charset}" if charset else kind}
    if coding:
        headers["Content-Encoding"] = coding
    content = b"grant_type=client_credentials" if path == "/token" else b"{}"
    assert_problem(unchanged.post(path, content=content, headers=headers), 415)


def test_a_sign_up_of_many_bad_members_lists_20(unchanged: TestClient) -> None:
    members = {f"x{n}": 1 for n in range(1_000)}
    sign_up = {"name": "Ada", "email": "many@example.org", "password": PASSWORD}
    content = json.dumps({**sign_up, **members})
    headers = {"Content-Type": "application/json"}
    answer = unchanged.post("/sign-up", content=content.encode(), headers=headers)
    problem = assert_problem(answer, 422, "body.x0", "and 980 more")
    assert len(problem["errors"]) == 20 and problem["errors_omitted"] == 980


NOT_SIGN_UPS = [
    b"{",
    b'"a string"',
    b"[]",
    b"\xff\xfe",
    b'{"name": 1, "email": [], "password": {}}',
]


@pytest.mark.parametrize("content", NOT_SIGN_UPS)
def test_a_malformed_sign_up_body_is_refused(unchanged: TestClient, content: bytes) -> None:
    answer = unchanged.post(
        "/sign-up", content=content, headers={"Content-Type": "application/json"}
    )
    assert_problem(answer, 422)


SIGN_UP = f'"email": "dup@example.org", "password": "{PASSWORD}"'
REPEATED_MEMBERS = [
    ('{"name": "Ada", "name": "Bob", ' + SIGN_UP + "}", "body.name"),
    ('{"na\\u006de": "Ada", "name": "Bob", ' + SIGN_UP + "}", "body.name"),
    ('{"name": "Ada", ' + SIGN_UP + ', "extra": {"a": [{"b": 1, "b": 2}]}}', "body.extra.a.0.b"),
]


@pytest.mark.parametrize(("content", "field"), REPEATED_MEMBERS)
def test_a_sign_up_naming_a_member_twice_is_refused(
    unchanged: TestClient, content: str, field: str
) -> None:
    answer = unchanged.post(
        "/sign-up", content=content.encode(), headers={"Content-Type": "application/json"}
    )
    problem = assert_problem(answer, 422, field)
    assert problem["type"] == "/problems/validation-error"
    assert problem["errors"] == [
        {
            "field": field,
            "message": f"the member {field.rsplit('.', 1)[1]!r} appears twice in one object:"
            " the body is ambiguous",
        }
    ]


def test_an_account_naming_the_password_twice_is_refused(
    unchanged: TestClient, operator_token: str
) -> None:
    content = f'{{"user_id": "{uuid.uuid4()}", "password": "x", "password": "{PASSWORD}"}}'
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {operator_token}"}
    answer = unchanged.post("/accounts", content=content.encode(), headers=headers)
    assert_problem(answer, 422, "body.password")


@pytest.mark.parametrize("content", [b"xx", b'{"a": 1, "a": 2}', b'{"x": 1}', b"[]", b"null"])
def test_a_body_sent_to_key_rotation_is_refused(
    unchanged: TestClient, operator_token: str, content: bytes
) -> None:
    """Rotation takes no body: none or `{}`, and anything else is a 422 that rotates nothing."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {operator_token}"}
    answer = unchanged.post("/keys/rotate", content=content, headers=headers)
    errors = assert_problem(answer, 422, "body")["errors"]
    assert errors == [{"field": "body", "message": errors[0]["message"]}]
    assert "takes no body" in errors[0]["message"]


@pytest.mark.parametrize("content", [b"", b"{}", b" { } "])
def test_key_rotation_takes_no_body_or_an_empty_object(
    identity_client: TestClient, operator_token: str, content: bytes
) -> None:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {operator_token}"}
    answer = identity_client.post("/keys/rotate", content=content, headers=headers)
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("key", ["", "with space", "é" * 3, "x" * 201])
def test_a_malformed_idempotency_key_is_refused(unchanged: TestClient, key: str) -> None:
    headers = {"Idempotency-Key": key.encode()}
    body = {"name": "Ada", "email": "key@example.org", "password": PASSWORD}
    assert_problem(unchanged.post("/sign-up", json=body, headers=headers), 400, "Idempotency-Key")


def test_a_sign_up_without_the_users_service_is_a_503(
    identity_settings: IdentitySettings,
) -> None:
    alone = identity_settings.model_copy(update={"write_urls": ""})
    with TestClient(create_app(alone)) as client:
        before = row_counts(identity_of(client))
        answer = sign_up(client)
        assert_problem(answer, 503, "users service")
        assert answer.headers["retry-after"] == "1"
        assert row_counts(identity_of(client)) == before


@pytest.mark.parametrize("path", ["/jwks.json", "/healthz"])
def test_a_malformed_correlation_id_is_400_on_a_query(unchanged: TestClient, path: str) -> None:
    assert_problem(unchanged.get(path, headers={"X-Correlation-Id": "x" * 150}), 400)
    assert unchanged.get(path).status_code == 200


def test_a_token_request_whose_client_leaves_mid_body_is_no_unexpected_error(
    identity_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy that times out, or a client that gives up, closes the connection before the form
    has arrived: that is logged as no error, and raises nothing out of the app."""
    fields = {
        "host": "identity",
        "content-type": "application/x-www-form-urlencoded",
        "content-length": "100",
    }
    scope = post_scope("/token", fields)
    arriving = [{"type": "http.request", "body": b"grant_type=pass", "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return arriving.pop(0) if arriving else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def request() -> None:
        await identity_client.app(scope, receive, send)  # type: ignore[arg-type]

    with caplog.at_level(logging.ERROR):
        identity_client.portal.call(request)  # type: ignore[union-attr]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sent[0]["status"] == 400
