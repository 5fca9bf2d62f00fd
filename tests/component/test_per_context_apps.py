"""A write service per context (`strata-write-api --context orders`) in one process each: the
orders service has no users' store of its own to ask, only its replica of the users' events.

Here both run in this test process, as two apps on one pair of stores. In the embedded mode the
orders app reads the users' SQLite file, so every registration is seen at once; in the stack
mode it follows the users' JetStream stream, which no relay feeds here, so the replica only
moves when a test says so (tests/e2e/test_contexts_apart.py runs the whole path).
"""

import uuid
from collections.abc import Iterator
from typing import cast

import httpx
import pytest
from fastapi.testclient import TestClient

from contexts.registered import REGISTRY
from contexts.settings import Settings
from eventlog.envelope import envelope_source
from eventlog.replicas import ReplicaStore, take_in
from tests.support.api import assert_problem, register, services
from tests.support.auth import OPERATOR
from write_api.app import create_app


@pytest.fixture
def users(settings: Settings) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings, contexts=REGISTRY.only("users")), headers=OPERATOR
    ) as client:
        yield client


@pytest.fixture
def orders(settings: Settings) -> Iterator[TestClient]:
    # A stream namespace of its own: no stream, so the stack mode's feed brings nothing.
    namespace = f"apart{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(
        update={"replica_wait_seconds": 0.2, "stream_namespace": namespace}
    )
    with TestClient(
        create_app(settings, contexts=REGISTRY.only("orders")), headers=OPERATOR
    ) as client:
        yield client


def _order(orders: TestClient, user: str, **params: str) -> httpx.Response:
    response: httpx.Response = orders.post(
        "/orders", params=params, json={"user_id": user, "currency": "EUR"}
    )
    return response


def test_each_app_serves_its_own_context_and_store(users: TestClient, orders: TestClient) -> None:
    assert users.get("/readyz").status_code == 200
    assert orders.get("/readyz").status_code == 200
    assert orders.post("/users", json={"name": "A", "email": "a@example.com"}).status_code == 404
    assert users.post("/orders", json={"user_id": str(uuid.uuid4())}).status_code == 404
    assert [service.name for service in services(orders).all()] == ["orders"]


def test_an_unknown_user_is_a_422_that_changes_nothing(orders: TestClient) -> None:
    before = services(orders)["orders"].recorder.max_notification_id()
    response = _order(orders, str(uuid.uuid4()))
    assert_problem(response, 422, "has not heard of a user")
    assert services(orders)["orders"].recorder.max_notification_id() == before


def test_a_position_of_a_context_orders_does_not_follow_is_a_422(orders: TestClient) -> None:
    for position in ("orders:1", "notes:3", "users:", "users:-1", "users:1:2", " users:1"):
        body = assert_problem(_order(orders, str(uuid.uuid4()), position=position), 422)
        assert [error["field"] for error in body["errors"]] == ["query.position"], position


def test_a_position_never_reached_is_a_503_naming_both_positions(orders: TestClient) -> None:
    response = _order(orders, str(uuid.uuid4()), position="users:999999999")
    body = assert_problem(response, 503, "not yet 999999999")
    assert response.headers["Retry-After"] == "1"
    assert body["position"] == "users:999999999"
    assert body["reached"].startswith("users:")


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_embedded_orders_sees_every_registration_at_once(
    users: TestClient, orders: TestClient
) -> None:
    user = register(users)
    assert _order(orders, user).status_code == 201
    assert users.post(f"/users/{user}/deactivate").status_code == 200
    assert_problem(_order(orders, user), 409, "deactivated")


def test_a_registration_reaches_orders_through_its_events(
    users: TestClient, orders: TestClient, settings: Settings
) -> None:
    """Whatever feeds it, once the replica has the registration's position the order is taken."""
    registered = users.post("/users", json={"name": "Ada", "email": f"{uuid.uuid4()}@x.org"})
    position = registered.json()["position"]
    if settings.mode == "stack":  # the orders app's mode: its settings differ in no URL
        _take_in_users_log(users, orders)
    response = _order(orders, registered.json()["id"], position=position)
    assert response.status_code == 201, response.text


def _take_in_users_log(users: TestClient, orders: TestClient) -> None:
    """What the users' relay and the orders' stream feed do in the stack, without NATS."""
    (replica,) = REGISTRY["orders"].replicas
    log = envelope_source(services(users)["users"].recorder).select_envelopes("users", 0, 10_000)
    take_in(cast(ReplicaStore, services(orders)["orders"].recorder), replica, log)
