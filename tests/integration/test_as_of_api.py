"""GET ...?as_of= on the write API, on SQLite and on PostgreSQL: the profile or order as it was
then, with its ETag; before the aggregate existed a 404 naming when it was created; an
unparseable time a 422 naming the parameter."""

from datetime import datetime
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from tests.support.api import assert_problem, register
from tests.support.as_of import ONE_MICROSECOND


def test_get_a_profile_as_of_a_time(client: TestClient) -> None:
    user = register(client, name="Ada")
    first = client.get(f"/users/{user}").json()
    assert client.put(f"/users/{user}/name", json={"name": "Ada King"}).status_code == 200
    assert client.post(f"/users/{user}/hobbies", json={"hobby": "Chess"}).status_code == 200

    then = client.get(f"/users/{user}", params={"as_of": first["modified_on"]})
    now = client.get(f"/users/{user}", params={"as_of": "now"})
    current = client.get(f"/users/{user}")

    assert then.status_code == 200
    assert then.json() == first
    assert then.headers["ETag"] == '"1"'
    assert now.json() == current.json()
    assert now.headers["ETag"] == current.headers["ETag"] == '"3"'


def test_get_an_order_as_of_a_time(client: TestClient) -> None:
    user = register(client)
    order = client.post("/orders", json={"user_id": user, "currency": "EUR"}).json()["id"]
    line = {"sku": "A-1", "quantity": 2, "unit_price": "9.99"}
    assert client.post(f"/orders/{order}/lines", json=line).status_code == 200
    with_line = client.get(f"/orders/{order}").json()
    assert client.post(f"/orders/{order}/place").status_code == 200

    then = client.get(f"/orders/{order}", params={"as_of": with_line["modified_on"]})

    assert then.status_code == 200
    assert then.json() == with_line
    assert then.json()["status"] == "draft"
    assert then.headers["ETag"] == '"2"'
    assert client.get(f"/orders/{order}", params={"as_of": "-0s"}).json()["status"] == "placed"


def test_as_of_before_the_aggregate_existed_is_a_404_naming_when_it_was_created(
    client: TestClient,
) -> None:
    user = register(client)
    created = client.get(f"/users/{user}").json()["created_on"]
    before = (datetime.fromisoformat(created) - ONE_MICROSECOND).isoformat()

    response = client.get(f"/users/{user}", params={"as_of": before})

    body = assert_problem(response, 404, "did not exist yet", "it was created at")
    assert body["type"] == "/problems/not-found-at-time"
    unknown = client.get(f"/orders/{uuid4()}", params={"as_of": "now"})
    assert assert_problem(unknown, 404, "no Order with id")["type"] == "/problems/not-found"


@pytest.mark.parametrize("as_of", ["yesterday", "2026-13-01", "-2x", ""])
def test_an_unparseable_as_of_is_a_422_naming_the_parameter(client: TestClient, as_of: str) -> None:
    user = register(client)

    response = client.get(f"/users/{user}", params={"as_of": as_of})

    body = assert_problem(response, 422, "query.as_of")
    assert "is not a time" in body["errors"][0]["message"]
