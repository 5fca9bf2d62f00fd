"""The bulk backfill (projections.bulk_rebuild) equals live projection: every read model of the
registry, folded in memory with spills and reloads, against the same history projected event by
event (design invariant 4), failures parked alike."""

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from eventlog.envelope import EventEnvelope
from projections.bulk_rebuild import BulkBackfill, bulk_capable
from projections.catchup import project_log
from projections.engine import Target
from projections.targets import target_at
from projections.verify import compare
from readmodels.sql import SqlDatabase
from tests.support.projections import FAST, READ_SIDES, ReadSide, read_side

START = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
Data = dict[str, Any]


class History:
    """A varied log per context, written as envelopes: every event type the projections read,
    updates and deletes of the same keys, and events that fail (parked, then blocked)."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.logs: dict[str, list[EventEnvelope]] = {}
        self.versions: dict[UUID, int] = {}
        self.clock = START

    def add(self, context: str, kind: str, aggregate: UUID, event: str, data: Data) -> None:
        log = self.logs.setdefault(context, [])
        self.versions[aggregate] = version = self.versions.get(aggregate, 0) + 1
        self.clock += timedelta(minutes=self.random.randint(1, 90))  # crosses UTC days
        log.append(
            EventEnvelope(
                len(log) + 1, context, kind, aggregate, version, event, 1, self.clock, data
            )
        )

    def select_envelopes(self, context: str, after: int, limit: int) -> list[EventEnvelope]:
        return [e for e in self.logs.get(context, []) if e.position > after][:limit]


def user_events(h: History, user: UUID) -> None:
    h.add("users", "UserProfile", user, "Registered", {"name": "Ada", "email": "a@x.io"})
    hobbies: list[str] = []
    for _ in range(h.random.randint(0, 6)):
        match h.random.choice(["rename", "email", "hobby", "unhobby", "move", "active"]):
            case "rename":
                data: Data = {"name": h.random.choice(["Bé", "Cy", "DÉ"])}
                h.add("users", "UserProfile", user, "Renamed", data)
            case "email":
                h.add("users", "UserProfile", user, "EmailChanged", {"email": "b@x.io"})
            case "hobby":
                hobby = h.random.choice(["Chess", "golf", "Tea"])
                if hobby.lower() not in [x.lower() for x in hobbies]:
                    hobbies.append(hobby)
                    h.add("users", "UserProfile", user, "HobbyAdded", {"hobby": hobby})
            case "unhobby" if hobbies:
                hobby = hobbies.pop(h.random.randrange(len(hobbies)))
                h.add("users", "UserProfile", user, "HobbyRemoved", {"hobby": hobby})
            case "move":
                data = {"city": "Oslo", "country": h.random.choice(["NO", "SE"])}
                h.add("users", "UserProfile", user, "LocationChanged", data)
            case "active":
                kind = h.random.choice(["Deactivated", "Reactivated"])
                h.add("users", "UserProfile", user, kind, {})


def order_events(h: History, order: UUID, user: UUID) -> None:
    currency = h.random.choice(["EUR", "GBP"])
    h.add("orders", "Order", order, "Created", {"user_id": str(user), "currency": currency})
    lines: dict[str, int] = {}
    for sku in h.random.sample(["A", "B", "C"], h.random.randint(1, 3)):
        lines[sku] = price = h.random.randint(1, 999)
        data: Data = {"sku": sku, "quantity": 2, "unit_price": f"{price / 100:.2f}"}
        h.add("orders", "Order", order, "LineAdded", data)
    if len(lines) > 1 and h.random.random() < 0.5:
        sku = sorted(lines)[0]
        del lines[sku]
        h.add("orders", "Order", order, "LineRemoved", {"sku": sku})
    total = f"{sum(2 * p for p in lines.values()) / 100:.2f}"
    h.add("orders", "Order", order, "Placed", {"total": total})
    fate = h.random.choice(["paid", "shipped", "refunded", "cancelled", "placed"])
    if fate in ("paid", "shipped", "refunded"):
        h.add("orders", "Order", order, "Paid", {"amount": total})
    if fate == "shipped":
        h.add("orders", "Order", order, "Shipped", {})
    if fate in ("refunded", "cancelled"):
        previous = "paid" if fate == "refunded" else "placed"
        data = {"reason": "changed mind", "previous_status": previous}
        h.add("orders", "Order", order, "Cancelled", data)


def fulfilment_events(h: History, order: UUID, user: UUID) -> None:
    """A payment, a shipment and the saga between them, with failures and a person's help."""
    ids: Data = {"order_id": str(order), "user_id": str(user)}
    payment, shipment, saga = uuid4(), uuid4(), uuid4()
    pay: Data = {**ids, "amount": "12.50", "currency": "EUR"}
    h.add("payments", "Payment", payment, "Requested", pay)
    h.add("fulfilment", "OrderFulfilment", saga, "Started", ids)
    h.add("fulfilment", "OrderFulfilment", saga, "StepRequested", {"step": "authorize"})
    if h.random.random() < 0.3:
        h.add("payments", "Payment", payment, "Declined", {"reason": "no funds"})
        data: Data = {"step": "authorize", "reason": "no funds"}
        h.add("fulfilment", "OrderFulfilment", saga, "StepFailed", data)
        h.add("fulfilment", "OrderFulfilment", saga, "CompensationStarted", {"reason": "declined"})
        h.add("fulfilment", "OrderFulfilment", saga, "Cancelled", {})
        return
    h.add("payments", "Payment", payment, "Authorized", {"reference": "ref-1"})
    data = {"step": "authorize", "detail": {"reference": "ref-1"}}
    h.add("fulfilment", "OrderFulfilment", saga, "StepSucceeded", data)
    h.add("shipping", "Shipment", shipment, "Requested", ids)
    h.add("fulfilment", "OrderFulfilment", saga, "StepRequested", {"step": "schedule"})
    if h.random.random() < 0.4:
        h.add("fulfilment", "OrderFulfilment", saga, "StepTimedOut", {"step": "schedule"})
        h.add("fulfilment", "OrderFulfilment", saga, "Parked", {"reason": "carrier silent"})
        h.add("fulfilment", "OrderFulfilment", saga, "Retried", {})
    h.add("shipping", "Shipment", shipment, "Scheduled", {"carrier": "dhl", "reference": "s-1"})
    data = {"step": "schedule", "detail": {"carrier": "dhl"}}
    h.add("fulfilment", "OrderFulfilment", saga, "StepSucceeded", data)
    for event in ("CaptureRequested", "Captured"):
        h.add("payments", "Payment", payment, event, {})
    for event in ("DispatchRequested", "Dispatched", "Delivered"):
        h.add("shipping", "Shipment", shipment, event, {})
    h.add("fulfilment", "OrderFulfilment", saga, "Completed", {})
    if h.random.random() < 0.2:
        h.add("fulfilment", "OrderFulfilment", saga, "Resolved", {"note": "checked by hand"})


def poison(h: History, user: UUID) -> None:
    """Events the projections fail on (a payment of an order never created, a hobby never
    added), each followed by a later event of its aggregate (parked behind it)."""
    ghost = uuid4()
    h.add("orders", "Order", ghost, "Paid", {"amount": "1.00"})
    h.add("orders", "Order", ghost, "Shipped", {})
    h.add("users", "UserProfile", user, "HobbyRemoved", {"hobby": "never added"})
    h.add("users", "UserProfile", user, "Renamed", {"name": "Zed"})
    h.add("payments", "Payment", uuid4(), "Captured", {})


def history(seed: int = 11, users: int = 12, orders: int = 40) -> History:
    h = History(seed)
    people = [uuid4() for _ in range(users)]
    for person in people:
        user_events(h, person)
    for _ in range(orders):
        order, person = uuid4(), h.random.choice(people)
        order_events(h, order, person)
        if h.random.random() < 0.5:
            fulfilment_events(h, order, person)
        if h.random.random() < 0.1:
            user_events(h, uuid4())
    poison(h, people[0])
    for person in people[:3]:  # keys touched again long after they were spilled
        h.add("users", "UserProfile", person, "EmailChanged", {"email": "late@x.io"})
    return h


@pytest.fixture(params=READ_SIDES)
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadSide]:
    with read_side(request.param, tmp_path) as made:
        yield made


def parked(db: SqlDatabase, target: Target) -> list[tuple[Any, ...]]:
    p = target.projection
    with db.transaction(write=False) as tx:
        rows = tx.query(
            "SELECT context, position, status, attempts FROM dead_letters"
            " WHERE projection = ? AND version = ? ORDER BY context, position",
            [p.name, p.version],
        )
    return [tuple(row) for row in rows]


@pytest.mark.parametrize(("limit", "page_size"), [(5, 7), (100_000, 20_000)])
def test_a_bulk_backfill_equals_live_projection_for_every_read_model(
    side: ReadSide, limit: int, page_size: int
) -> None:
    log = history()
    sources = dict.fromkeys(log.logs, log)
    project_log(sources, side.targets, policy=FAST)
    heads = {context: len(events) for context, events in log.logs.items()}
    bulk_built = 0
    for live in side.targets:
        shadow = target_at(live.projection, 2, side.db, side.redis, side.layout)
        if not bulk_capable(shadow):
            continue  # document models in SQLite: rebuilt event by event
        shadow.prepare()
        bulk = BulkBackfill(shadow, page_size=page_size, limit=limit)
        bulk.run(sources, heads, None, _Silent())

        comparison = compare(live, shadow)
        assert comparison.equal, (live.projection.name, comparison.differences)
        for context in live.projection.contexts:
            assert shadow.checkpoint(context).position == live.checkpoint(context).position
        assert parked(side.db, shadow) == parked(side.db, live)
        if limit < 100:
            assert bulk.cache.spills > 0
        bulk_built += 1
    assert bulk_built >= (9 if side.kind == "stack" else 6)
    assert any(parked(side.db, t) for t in side.targets)  # the poison was parked


def test_spilled_rows_are_read_back_and_new_ones_cost_no_round_trip(side: ReadSide) -> None:
    log = history(seed=3)
    sources = dict.fromkeys(log.logs, log)
    heads = {context: len(events) for context, events in log.logs.items()}
    orders = next(t for t in side.targets if t.projection.name == "orders")
    shadow = target_at(orders.projection, 2, side.db, side.redis, side.layout)
    shadow.prepare()
    bulk = BulkBackfill(shadow, page_size=50, limit=1)  # an order spilled amid its events
    bulk.run(sources, heads, None, _Silent())

    project_log(sources, [orders], policy=FAST)
    assert compare(orders, shadow).equal
    # Rows spilled amid their order's events are read back; a new order or line (never
    # spilled) is not looked for in the shadow: at most the order and one line per later event.
    later = [e for e in log.logs["orders"] if e.event_type != "Created"]
    assert 0 < bulk.cache.loads <= len(later) + sum(e.event_type == "LineRemoved" for e in later)
    assert bulk.cache.loads < len(log.logs["orders"])


class _Silent:
    def advance(self, count: int) -> None:
        pass
