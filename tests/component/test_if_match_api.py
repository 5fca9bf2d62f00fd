"""If-Match through the API, in both modes: strong comparison, `*`, lists, malformed values."""

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.api import assert_problem, create_order, register, store_state


def rename(client: TestClient, user: str, *if_match: str) -> httpx.Response:
    headers = [("If-Match", value) for value in if_match]
    response: httpx.Response = client.put(
        f"/users/{user}/name", json={"name": "Renamed"}, headers=headers
    )
    return response


@pytest.mark.parametrize("if_match", ['"1"', '"7", "1"', '"1",,"2"', "*", " * ", 'W/"3", "1"'])
def test_a_condition_naming_the_current_version_lets_the_command_through(
    client: TestClient, if_match: str
) -> None:
    user = register(client)
    response = rename(client, user, if_match)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'


def test_a_list_split_over_several_field_lines_is_one_list(client: TestClient) -> None:
    user = register(client)
    assert rename(client, user, '"5"', '"1"').status_code == 200


@pytest.mark.parametrize(
    ("if_match", "detail"),
    [
        ('W/"1"', "the condition names none that can match"),  # weak: never matches
        ('"2"', "is at version 1, not at version 2"),
        ('"2", "3"', "not at version 2 or 3"),
        ('"0"', "not at version 0"),
    ],
)
def test_a_condition_the_current_version_fails_is_412_and_writes_nothing(
    client: TestClient, if_match: str, detail: str
) -> None:
    user = register(client)
    before = store_state(client)
    body = assert_problem(rename(client, user, if_match), 412, detail)
    assert body["type"] == "/problems/version-mismatch"
    assert store_state(client) == before
    assert client.get(f"/users/{user}").json()["name"] == "Ada Lovelace"


@pytest.mark.parametrize("if_match", ["*", '"1"'])
def test_no_condition_holds_for_a_resource_a_create_brings_into_being(
    client: TestClient, if_match: str
) -> None:
    user = register(client)
    before = store_state(client)
    headers = {"If-Match": if_match}
    created = client.post("/orders", json={"user_id": user, "currency": "EUR"}, headers=headers)
    assert_problem(created, 412, "does not exist yet")
    registered = client.post(
        "/users", json={"name": "Ada", "email": "x@example.com"}, headers=headers
    )
    assert_problem(registered, 412, "does not exist yet")
    assert store_state(client) == before


def test_an_unknown_aggregate_is_404_whatever_the_condition(client: TestClient) -> None:
    unknown = "2e31a84a-2ade-4076-83c6-62ab586bccdb"
    assert_problem(rename(client, unknown, "*"), 404, unknown)


@pytest.mark.parametrize(
    "if_match",
    ['"1', "1", '"01"', "", " ", ",", '"1" "1"', '"1" x', '*, "1"', 'w/"1"', '"a"', '"1";'],
)
def test_a_malformed_if_match_is_400_and_writes_nothing(client: TestClient, if_match: str) -> None:
    user = register(client)
    order = create_order(client, user)
    before = store_state(client)
    for response in (
        rename(client, user, if_match),
        client.post(f"/orders/{order}/place", headers={"If-Match": if_match}),
    ):
        body = assert_problem(response, 400, "If-Match", "malformed")
        assert body["type"] == "/problems/http-error"
    assert store_state(client) == before
