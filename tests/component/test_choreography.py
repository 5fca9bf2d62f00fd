"""Choreography (issue 9, item 4): a user's deactivation makes orders cancel that user's orders
not yet paid, by reacting to the users' event, with no orchestrator and exactly once."""

import uuid

from fastapi.testclient import TestClient

from tests.support.api import add_line, create_order, register, services
from tests.support.servers import wait_until


def _status(client: TestClient, order: str) -> str:
    return str(client.get(f"/orders/{order}").json()["status"])


def _order_at(client: TestClient, user: str, steps: list[str]) -> str:
    order = create_order(client, user)
    add_line(client, order, "A", 1, "2.50")
    for step in steps:
        assert client.post(f"/orders/{order}/{step}").status_code == 200
    return order


def test_deactivating_a_user_cancels_their_unpaid_orders_once(client: TestClient) -> None:
    user, bystander = register(client), register(client)
    draft, placed = _order_at(client, user, []), _order_at(client, user, ["place"])
    paid = _order_at(client, user, ["place", "pay"])
    others = _order_at(client, bystander, ["place"])

    assert client.post(f"/users/{user}/deactivate").status_code == 200
    wait_until(
        lambda: _status(client, draft) == _status(client, placed) == "cancelled",
        10,
        "the user's unpaid orders are cancelled",
    )
    # Left alone; a saga that reaches a provider (one listening on its default port) may
    # move them on meanwhile, so only what the reaction must not do is checked.
    assert _status(client, paid) in ("paid", "shipped")
    assert _status(client, others) not in ("cancelled", "draft")
    *_, cancelled = services(client)["orders"].events.get(uuid.UUID(placed))
    assert type(cancelled).__name__ == "Cancelled"
    assert cancelled.reason == "the user was deactivated"  # type: ignore[attr-defined]

    versions = {
        order: client.get(f"/orders/{order}").json()["version"] for order in (draft, placed)
    }
    assert client.post(f"/users/{user}/reactivate").status_code == 200
    again = _order_at(client, user, [])
    assert client.post(f"/users/{user}/deactivate").status_code == 200
    wait_until(lambda: _status(client, again) == "cancelled", 10, "the new order is cancelled")
    assert {o: client.get(f"/orders/{o}").json()["version"] for o in versions} == versions
