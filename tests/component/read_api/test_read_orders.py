"""GET /orders (filtered keyset pages) and GET /orders/{id}, on both storage modes."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from readmodels.catalog import ORDERS
from tests.component.read_api.pages import ids, walk
from tests.support.api import assert_problem
from tests.support.read_models import T0, Backend, OrderLineRow

STATUSES = ["draft", "placed", "paid", "shipped", "cancelled"]


def orders(backend: Backend, users: list[uuid.UUID], count: int = 29) -> list[dict[str, Any]]:
    """Orders spread over users and statuses; some share a creation time (id breaks the tie)."""
    written = []
    for i in range(count):
        order, user, status = uuid.uuid4(), users[i % len(users)], STATUSES[i % 5]
        created = T0 + timedelta(minutes=i // 3)  # three orders per minute
        placed = None if status == "draft" else T0 + timedelta(hours=1, minutes=(i * 7) % 11)
        backend.write.order(
            order,
            user,
            status=status,
            created_at=created,
            placed_at=placed,
            lines=[OrderLineRow("A-1", 1 + i % 3, 250)],
        )
        written.append(
            {"id": str(order), "user": user, "status": status, "created": created, "placed": placed}
        )
    backend.write.checkpoint(ORDERS, "orders", 77)
    return written


def by_created(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["created"], r["id"]))


def by_placed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((r for r in rows if r["placed"]), key=lambda r: (r["placed"], r["id"]))


def test_one_order_with_its_lines_money_and_times(client: TestClient, backend: Backend) -> None:
    order, user = uuid.uuid4(), uuid.uuid4()
    backend.write.order(
        order,
        user,
        currency="USD",
        status="cancelled",
        lines=[OrderLineRow("B-2", 3, 1999), OrderLineRow("A-1", 1, 5)],
        created_at=T0,
        placed_at=T0 + timedelta(minutes=1),
        paid_at=T0 + timedelta(minutes=2, microseconds=1),
        cancelled_at=T0 + timedelta(minutes=3),
        cancel_reason="changed my mind",
        version=6,
    )
    backend.write.checkpoint(ORDERS, "orders", 12)

    response = client.get(f"/orders/{order}")

    assert response.status_code == 200, response.text
    assert response.headers["X-Read-Position"] == "orders:12,fulfilment:0"
    assert response.json() == {
        "id": str(order),
        "user_id": str(user),
        "currency": "USD",
        "status": "cancelled",
        "total": "60.02",
        "line_count": 2,
        "created_at": "2026-01-05T09:30:00Z",
        "placed_at": "2026-01-05T09:31:00Z",
        "paid_at": "2026-01-05T09:32:00.000001Z",
        "shipped_at": None,
        "cancelled_at": "2026-01-05T09:33:00Z",
        "cancel_reason": "changed my mind",
        "version": 6,
        "lines": [
            {"sku": "A-1", "quantity": 1, "unit_price": "0.05", "subtotal": "0.05"},
            {"sku": "B-2", "quantity": 3, "unit_price": "19.99", "subtotal": "59.97"},
        ],
        "fulfilment": None,
    }


@pytest.mark.parametrize(
    ("currency", "prices", "unit_price", "subtotal", "total"),
    [
        ("JPY", (150000, 100), "1500", "4500", "4501"),
        ("BHD", (1500, 1), "15.000", "45.000", "45.010"),
        ("HRK", (1500, 1), "15.00", "45.00", "45.01"),  # no longer in ISO 4217: 2 decimals
    ],
)
def test_an_orders_money_has_its_currencys_minor_units(
    client: TestClient,
    backend: Backend,
    currency: str,
    prices: tuple[int, int],
    unit_price: str,
    subtotal: str,
    total: str,
) -> None:
    """`prices` are the stored cents of the two lines' unit prices."""
    order = uuid.uuid4()
    lines = [OrderLineRow("B-2", 3, prices[0]), OrderLineRow("A-1", 1, prices[1])]
    backend.write.order(order, uuid.uuid4(), currency=currency, lines=lines)
    backend.write.checkpoint(ORDERS, "orders", 12)

    detail = client.get(f"/orders/{order}").json()
    listed = client.get("/orders").json()["items"]

    assert (detail["currency"], detail["total"]) == (currency, total)
    assert detail["lines"][1] == {
        "sku": "B-2", "quantity": 3, "unit_price": unit_price, "subtotal": subtotal
    }  # fmt: skip
    assert [item["total"] for item in listed] == [total]


def test_unknown_order_is_404(client: TestClient, backend: Backend) -> None:
    backend.write.checkpoint(ORDERS, "orders", 3)
    missing = uuid.uuid4()

    response = client.get(f"/orders/{missing}")

    assert_problem(response, 404, str(missing))
    assert response.headers["X-Read-Position"] == "orders:3,fulfilment:0"


def test_a_malformed_order_id_is_422(client: TestClient) -> None:
    assert_problem(client.get("/orders/42"), 422, "path.order_id")


@pytest.mark.parametrize("limit", [1, 5, 200])
def test_order_pages_walk_every_order_once_by_creation_time(
    client: TestClient, backend: Backend, limit: int
) -> None:
    written = orders(backend, [uuid.uuid4(), uuid.uuid4()])

    walked = walk(client, "/orders", {"limit": limit})

    assert ids(walked) == ids(by_created(written))
    assert all("lines" not in item for item in walked)


def test_order_pages_filter_by_user_and_status(client: TestClient, backend: Backend) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    written = orders(backend, [alice, bob, alice])

    mine = walk(client, "/orders", {"user_id": str(alice), "limit": 3})
    paid = walk(client, "/orders", {"status": "paid", "limit": 2})
    bobs_drafts = walk(client, "/orders", {"user_id": str(bob), "status": "draft", "limit": 1})

    assert ids(mine) == ids(by_created([r for r in written if r["user"] == alice]))
    assert ids(paid) == ids(by_created([r for r in written if r["status"] == "paid"]))
    assert ids(bobs_drafts) == ids(
        by_created([r for r in written if r["user"] == bob and r["status"] == "draft"])
    )
    assert {item["user_id"] for item in mine} == {str(alice)}


def test_a_placement_window_pages_by_placement_time_and_leaves_out_drafts(
    client: TestClient, backend: Backend
) -> None:
    written = orders(backend, [uuid.uuid4()])
    start, end = T0 + timedelta(hours=1, minutes=2), T0 + timedelta(hours=1, minutes=8)

    window = walk(
        client,
        "/orders",
        {"placed_from": start.isoformat(), "placed_to": end.isoformat(), "limit": 2},
    )
    since = walk(client, "/orders", {"placed_from": start.isoformat(), "limit": 4})

    assert ids(window) == ids([r for r in by_placed(written) if start <= r["placed"] < end])
    assert ids(since) == ids([r for r in by_placed(written) if start <= r["placed"]])
    assert window and len(window) < len(since)


def test_a_placement_window_accepts_any_offset(client: TestClient, backend: Backend) -> None:
    written = orders(backend, [uuid.uuid4()])
    start = T0 + timedelta(hours=1, minutes=2)

    in_paris = walk(client, "/orders", {"placed_from": "2026-01-05T11:32:00+01:00", "limit": 3})

    assert ids(in_paris) == ids([r for r in by_placed(written) if start <= r["placed"]])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"user_id": "bob"}, "query.user_id"),
        ({"status": "lost"}, "query.status"),
        ({"placed_from": "yesterday"}, "query.placed_from"),
        ({"placed_from": "2026-01-05T10:00:00"}, "query.placed_from"),  # no offset
        (
            {"placed_from": "2026-01-05T10:00:00Z", "placed_to": "2026-01-05T10:00:00Z"},
            "query.placed_to",
        ),
        ({"limit": -1}, "query.limit"),
        ({"cursor": "eyJ4IjoxfQ.AAAA"}, "query.cursor"),
    ],
)
def test_orders_reject_bad_parameters_naming_them(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    body = assert_problem(client.get("/orders", params=params), 422, field)
    assert body["errors"][0]["field"] == field


def test_an_orders_cursor_only_continues_its_own_query(
    client: TestClient, backend: Backend
) -> None:
    orders(backend, [uuid.uuid4()])
    by_creation = client.get("/orders", params={"limit": 2}).json()["next_cursor"]
    by_placement = client.get("/orders", params={"placed_from": T0.isoformat(), "limit": 2}).json()[
        "next_cursor"
    ]

    assert_problem(
        client.get("/orders", params={"placed_from": T0.isoformat(), "cursor": by_creation}),
        422,
        "query.cursor",
    )
    assert_problem(client.get("/orders", params={"cursor": by_placement}), 422, "query.cursor")
    assert_problem(
        client.get("/orders", params={"status": "paid", "cursor": by_creation}),
        422,
        "query.cursor",
    )
