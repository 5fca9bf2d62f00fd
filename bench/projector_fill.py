"""The fill of bench/projector_throughput.py: synthetic but valid envelopes of customer
journeys, published into fresh context streams as the relay publishes them."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from fanout_stack import CONTEXTS, clock

from contexts.settings import Settings
from eventlog.envelope import EventEnvelope
from eventlog.jetstream import PublishWindow, context_stream, ensure_stream
from eventlog.relay_publish import relay_headers

ACTIVE_ORDERS = 64
CURRENCIES = ("EUR", "USD", "GBP")
PRICES = tuple(Decimal(p) for p in ("4.99", "9.99", "12.50", "19.90", "49.00"))
TICK = timedelta(milliseconds=3)
Data = dict[str, Any]


@dataclass
class _Order:
    id: UUID
    user_id: UUID
    currency: str
    lines: int
    version: int = 0
    total: Decimal = Decimal("0.00")


def synthetic_events(count: int, seed: int = 7) -> Iterator[EventEnvelope]:
    """`count` envelopes, as the relay publishes them, in store order per context."""
    journeys = Journeys(seed)
    while journeys.made < count:
        while len(journeys.active) < ACTIVE_ORDERS and journeys.made < count:
            yield from journeys.open_order()
        if journeys.made >= count:
            return
        yield journeys.order_step()


class Journeys:
    """Customer journeys interleaved: orders opened (with a registration for every other one)
    and moved on one event at a time, in a random but seeded order."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.positions = Counter[str]()
        self.users: list[UUID] = []
        self.active: list[_Order] = []
        self.started = 0
        self.clock_at = datetime(2026, 11, 1, tzinfo=UTC)
        self.made = 0

    def new_id(self) -> UUID:
        return UUID(int=self.rng.getrandbits(128), version=4)

    def envelope(
        self,
        context: str,
        kind: str,
        aggregate: UUID,
        version: int,
        event: str,
        data: dict[str, Any],
    ) -> EventEnvelope:
        self.positions[context] += 1
        self.clock_at += TICK
        self.made += 1
        return EventEnvelope(
            position=self.positions[context],
            context=context,
            aggregate_type=kind,
            aggregate_id=aggregate,
            aggregate_version=version,
            event_type=event,
            schema_version=1,
            timestamp=self.clock_at,
            data=data,
            correlation_id=str(self.new_id()),
            causation_id=None,
        )

    def open_order(self) -> Iterator[EventEnvelope]:
        """A new order, of a new user (registered here) for every other one."""
        if self.started % 2 == 0 or not self.users:
            user = self.new_id()
            self.users.append(user)
            n = len(self.users)
            data = {"name": f"Synthetic User {n}", "email": f"user{n}@bench.example.com"}
            yield self.envelope("users", "UserProfile", user, 1, "Registered", data)
        else:
            user = self.rng.choice(self.users)
        self.started += 1
        order = _Order(self.new_id(), user, CURRENCIES[self.started % 3], self.rng.randint(1, 3))
        self.active.append(order)

    def order_step(self) -> EventEnvelope:
        """The next event of one open order: created, its lines, placed, paid (then closed)."""
        order = self.rng.choice(self.active)
        order.version += 1
        v = order.version
        data: dict[str, Any]
        if v == 1:
            event, data = "Created", {"user_id": str(order.user_id), "currency": order.currency}
        elif v <= 1 + order.lines:
            price = self.rng.choice(PRICES)
            quantity = self.rng.randint(1, 5)
            order.total += price * quantity
            event = "LineAdded"
            data = {"sku": f"SKU-{v - 1}", "quantity": quantity, "unit_price": str(price)}
        elif v == 2 + order.lines:
            event, data = "Placed", {"total": str(order.total)}
        else:
            event, data = "Paid", {"amount": str(order.total)}
            self.active.remove(order)
        return self.envelope("orders", "Order", order.id, v, event, data)


@dataclass
class Expected:
    """What the read models must hold once every event is applied."""

    users: int = 0
    orders: int = 0
    paid_cents: Counter[str] = field(default_factory=Counter)  # per currency
    currency_of: dict[UUID, str] = field(default_factory=dict)

    def see(self, envelope: EventEnvelope) -> None:
        if envelope.event_type == "Registered":
            self.users += 1
        elif envelope.event_type == "Created":
            self.orders += 1
            self.currency_of[envelope.aggregate_id] = envelope.data["currency"]
        elif envelope.event_type == "Paid":
            currency = self.currency_of.pop(envelope.aggregate_id)
            self.paid_cents[currency] += int(Decimal(envelope.data["amount"]) * 100)


@dataclass
class Fill:
    events: int
    per_context: dict[str, int]
    seconds: float
    bytes: int
    expected: Expected

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def fill_streams(settings: Settings, count: int) -> Fill:
    from nats.aio.client import Client as NatsClient  # noqa: PLC0415

    nc = NatsClient()
    await nc.connect(servers=[settings.nats_url])
    js = nc.jetstream()
    for context in CONTEXTS:
        await ensure_stream(js, context, settings)
    streams = {context: context_stream(context, settings) for context in CONTEXTS}
    window = PublishWindow(nc, max_in_flight=256, ack_timeout=30)
    await window.open()
    previous: dict[str, str | None] = dict.fromkeys(CONTEXTS)
    per_context = Counter[str]()
    expected = Expected()
    size = 0
    started = clock()
    try:
        for envelope in synthetic_events(count):
            stream = streams[envelope.context]
            headers = relay_headers(envelope, stream.name, previous[envelope.context])
            payload = envelope.to_json()
            size += len(payload)
            await window.publish(stream.subject_of(envelope), payload, headers)
            previous[envelope.context] = envelope.message_id
            per_context[envelope.context] += 1
            expected.see(envelope)
        acks = await window.flush()
        duplicates = sum(1 for ack in acks if ack.duplicate)
        if duplicates:
            raise RuntimeError(f"{duplicates} publishes were acknowledged as duplicates")
        seconds = clock() - started
    finally:
        await window.close()
        await nc.close()
    return Fill(sum(per_context.values()), dict(per_context), seconds, size, expected)
