"""Users and orders as separate services (issue 8, item 2): each write service is its own process
with its own event store only (`strata-write-api --context NAME`, the other store's URL unset),
and orders knows users from the users' events, through the relay and JetStream, never by asking.
"""

import uuid

import httpx

from eventlog.position_tokens import parse_token
from tests.support.auth import OPERATOR
from tests.support.servers import wait_until
from tests.support.stack import REPLICA_WAIT_SECONDS, Stack


def _register(stack: Stack) -> dict[str, str]:
    email = f"apart-{uuid.uuid4().hex}@example.com"
    response = httpx.post(
        f"{stack.url('write-users')}/users", json={"name": "Ada", "email": email}, headers=OPERATOR
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def _order(stack: Stack, user_id: str, position: str | None = None) -> httpx.Response:
    params = {} if position is None else {"position": position}
    return httpx.post(
        f"{stack.url('write-orders')}/orders",
        params=params,
        json={"user_id": user_id, "currency": "EUR"},
        timeout=REPLICA_WAIT_SECONDS + 10,
        headers=OPERATOR,
    )


def _replica_position(stack: Stack) -> float:
    metrics = httpx.get(f"{stack.url('write-orders')}/metrics").text
    prefix = 'strata_replica_position{context="orders",upstream="users"} '
    lines = [line for line in metrics.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, metrics
    return float(lines[0].removeprefix(prefix))


def test_each_write_service_serves_its_own_context_only(stack: Stack) -> None:
    users, orders = stack.url("write-users"), stack.url("write-orders")
    assert httpx.get(f"{users}/readyz").status_code == 200
    assert httpx.get(f"{orders}/readyz").status_code == 200
    user = _register(stack)
    registration = {"name": "A", "email": "a@example.com"}
    assert httpx.post(f"{orders}/users", json=registration, headers=OPERATOR).status_code == 404
    assert httpx.get(f"{orders}/users/{user['id']}", headers=OPERATOR).status_code == 404
    order = {"user_id": user["id"], "currency": "EUR"}
    assert httpx.post(f"{users}/orders", json=order, headers=OPERATOR).status_code == 404
    paths = set(httpx.get(f"{orders}/openapi.json").json()["paths"])
    assert any(path.startswith("/orders") for path in paths)
    assert not any(path.startswith("/users") for path in paths)


def test_an_order_waits_for_the_registration_it_names_then_is_created(stack: Stack) -> None:
    user = _register(stack)
    created = _order(stack, user["id"], position=user["position"])
    assert created.status_code == 201, created.text
    assert _replica_position(stack) >= parse_token(user["position"]).value


def test_a_deactivation_reaches_orders_cancels_the_open_ones_and_refuses_the_next(
    stack: Stack,
) -> None:
    user = _register(stack)
    opened = _order(stack, user["id"], position=user["position"])
    assert opened.status_code == 201, opened.text
    deactivated = httpx.post(
        f"{stack.url('write-users')}/users/{user['id']}/deactivate", headers=OPERATOR
    )
    assert deactivated.status_code == 200, deactivated.text
    refused = _order(stack, user["id"], position=deactivated.json()["position"])
    assert refused.status_code == 409, refused.text
    assert "deactivated" in refused.json()["detail"]

    order = f"{stack.url('write-orders')}/orders/{opened.json()['id']}"
    wait_until(
        lambda: httpx.get(order, headers=OPERATOR).json()["status"] == "cancelled",
        20,
        "orders cancels the open order of the deactivated user",
    )


def test_an_unknown_user_is_a_422_and_a_position_never_reached_a_503(stack: Stack) -> None:
    unknown = _order(stack, str(uuid.uuid4()))
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["type"] == "/problems/unknown-reference"

    behind = _order(stack, str(uuid.uuid4()), position="users:999999999")
    assert behind.status_code == 503, behind.text
    assert behind.headers["Retry-After"]
    problem = behind.json()
    assert problem["type"] == "/problems/position-not-reached"
    assert problem["position"] == "users:999999999"
    assert problem["reached"].startswith("users:")

    foreign = _order(stack, str(uuid.uuid4()), position="orders:1")
    assert foreign.status_code == 422, foreign.text
    assert foreign.json()["errors"][0]["field"] == "query.position"
