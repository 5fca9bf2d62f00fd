"""A header field or query parameter that holds one value, sent twice, is refused like the one
value it amounts to (several field lines read as their values joined by commas, RFC 9110 §5.3),
as two `Authorization` fields are: a problem naming it, and nothing done."""

import uuid

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.api import assert_problem, register, store_state

JSON = ("Content-Type", "application/json")
SINGLE_VALUE_HEADERS = {
    "Idempotency-Key": ("A-1", "B-1"),
    "X-Correlation-Id": ("corr-1", "corr-2"),
    "X-Causation-Id": ("cause-1", "cause-1"),  # the same value twice is no better
}


def rename(client: TestClient, user: str, fields: list[tuple[str, str]]) -> httpx.Response:
    """A rename of `user` with these header fields (the client's operator token aside)."""
    response: httpx.Response = client.put(
        f"/users/{user}/name", content=b'{"name": "Twice"}', headers=fields
    )
    return response


@pytest.mark.parametrize("name", SINGLE_VALUE_HEADERS)
def test_a_command_header_sent_twice_is_400_and_nothing_changes(
    client: TestClient, name: str
) -> None:
    user = register(client)
    before = store_state(client)
    first, second = SINGLE_VALUE_HEADERS[name]
    response = rename(client, user, [JSON, (name, first), (name, second)])
    body = assert_problem(response, 400, f"send one {name} field, not 2")
    assert body["type"] == "/problems/http-error"
    assert store_state(client) == before
    assert client.get(f"/users/{user}").json()["name"] == "Ada Lovelace"


def test_two_idempotency_keys_are_refused_as_the_two_joined_are(client: TestClient) -> None:
    """Neither key is recorded: each alone is then a first command."""
    user = register(client)
    a, b = f"A-{uuid.uuid4()}", f"B-{uuid.uuid4()}"
    joined = rename(client, user, [JSON, ("Idempotency-Key", f"{a}, {b}")])
    assert_problem(joined, 400, "Idempotency-Key")
    twice = rename(client, user, [JSON, ("Idempotency-Key", a), ("Idempotency-Key", b)])
    assert_problem(twice, 400, "Idempotency-Key")
    for key in (a, b):
        alone = rename(client, user, [JSON, ("Idempotency-Key", key)])
        assert alone.status_code == 200, alone.text
        assert "Idempotent-Replayed" not in alone.headers


@pytest.mark.parametrize(
    "types", [("application/json", "text/plain"), ("application/json", "application/json")]
)
def test_two_content_types_are_415_and_nothing_changes(
    client: TestClient, types: tuple[str, str]
) -> None:
    user = register(client)
    before = store_state(client)
    response = rename(client, user, [("Content-Type", kind) for kind in types])
    body = assert_problem(response, 415, "send one Content-Type field, not 2")
    assert body["type"] == "/problems/unsupported-media-type"
    assert store_state(client) == before
    assert client.get(f"/users/{user}").json()["name"] == "Ada Lovelace"


def test_a_query_parameter_given_twice_is_422_naming_it(client: TestClient) -> None:
    user = register(client)
    before = store_state(client)
    response = client.post(
        "/orders?position=users:1&position=users:2", json={"user_id": user, "currency": "EUR"}
    )
    body = assert_problem(response, 422, "query.position")
    assert body["errors"] == [
        {"field": "query.position", "message": "was given 2 times; give it once"}
    ]
    assert store_state(client) == before  # no order opened


def test_as_of_given_twice_is_422_naming_it(client: TestClient) -> None:
    user = register(client)
    response = client.get(f"/users/{user}?as_of=-1d&as_of=-1h")
    assert_problem(response, 422, "query.as_of")
