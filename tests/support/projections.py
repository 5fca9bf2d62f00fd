"""Projection test helpers: a scenario of real commands and the read sides to project it into.

The events come from the real command handlers on SQLite event stores, read back as envelopes
(`select_envelopes`), so projections see exactly what the relay would publish.
"""

import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from redis import Redis

from contexts.settings import Settings
from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.envelope import EnvelopeSource, EventEnvelope, envelope_source
from eventlog.stores import Services, build_services
from projections.engine import Engine, RetryPolicy, Target
from projections.model import Message, Projection
from projections.rebuild_targets import ReadModels
from projections.targets import sql_targets, stack_targets
from readmodels.keys import RedisLayout
from readmodels.sql import PostgresDatabase, SqlDatabase, SQLiteDatabase
from tests.support.dumps import dump_read_models
from tests.support.postgres import require_postgres, scratch_databases
from tests.support.read_models import require_redis

READ_SIDES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "stack"]
FAST = RetryPolicy(delays=(0.0, 0.0))


@dataclass
class Scenario:
    services: Services
    users: dict[str, UUID] = field(default_factory=dict)
    orders: dict[str, UUID] = field(default_factory=dict)

    def source(self, context: str) -> EnvelopeSource:
        return envelope_source(self.services[context].recorder)

    def envelopes(self, context: str, after: int = 0) -> list[EventEnvelope]:
        return self.source(context).select_envelopes(context, after, 10_000)

    def messages(self, context: str) -> list[Message]:
        return [Message(envelope) for envelope in self.envelopes(context)]

    def of(self, aggregate_id: UUID, event_type: str | None = None) -> list[EventEnvelope]:
        return [
            e
            for context in ("users", "orders")
            for e in self.envelopes(context)
            if e.aggregate_id == aggregate_id and event_type in (None, e.event_type)
        ]


@contextmanager
def event_stores(tmp_path: Path) -> Iterator[Services]:
    services = build_services(Settings(data_dir=tmp_path / "stores", group_commit=False))
    try:
        yield services
    finally:
        services.close()


def run_scenario(services: Services) -> Scenario:
    """Two users and four orders touching every event type (see test_projections_models)."""
    s = Scenario(services)
    ctx = CommandContext(correlation_id="scenario")
    users, orders = services.application(UsersService), services.application(OrdersService)
    tag = uuid.uuid4().hex[:8]
    ada = s.users["ada"] = users.register(ctx, "Ada Lovelace", f"ada-{tag}@x.io").id
    bob = s.users["bob"] = users.register(ctx, "Bob", f"bob-{tag}@x.io").id
    users.rename(ctx, ada, "Ada King")
    users.change_email(ctx, ada, "ada.king@example.com")
    users.add_hobby(ctx, ada, "Chess")
    users.add_hobby(ctx, ada, "Go/Baduk")
    users.remove_hobby(ctx, ada, "chess")
    users.change_location(ctx, ada, "London", "GB")
    users.deactivate(ctx, ada)
    users.reactivate(ctx, ada)
    users.add_hobby(ctx, bob, "Chess")

    o1 = s.orders["o1"] = orders.create_order(ctx, ada, "EUR").id
    orders.add_line(ctx, o1, "A", 2, Decimal("9.99"))
    orders.add_line(ctx, o1, "B", 1, Decimal("5.00"))
    orders.remove_line(ctx, o1, "B")
    orders.place(ctx, o1)
    orders.mark_paid(ctx, o1)
    orders.mark_shipped(ctx, o1)
    o2 = s.orders["o2"] = orders.create_order(ctx, ada, "EUR").id
    orders.add_line(ctx, o2, "C", 1, Decimal("100.00"))
    orders.place(ctx, o2)
    orders.mark_paid(ctx, o2)
    orders.cancel(ctx, o2, "damaged")
    o3 = s.orders["o3"] = orders.create_order(ctx, bob, "GBP").id
    orders.add_line(ctx, o3, "D", 3, Decimal("1.50"))
    orders.place(ctx, o3)
    orders.cancel(ctx, o3, "changed mind")
    o4 = s.orders["o4"] = orders.create_order(ctx, bob, "GBP").id
    orders.add_line(ctx, o4, "E", 1, Decimal("20.00"))
    orders.place(ctx, o4)
    orders.mark_paid(ctx, o4)
    return s


@dataclass
class ReadSide:
    kind: str
    db: SqlDatabase
    targets: list[Target]
    redis: Redis | None = None
    layout: RedisLayout | None = None

    def engines(self, policy: RetryPolicy = FAST) -> list[Engine]:
        return [Engine(target, policy) for target in self.targets]

    def target(self, name: str) -> Target:
        return next(t for t in self.targets if t.projection.name == name)

    def with_projections(self, projections: Sequence[Projection]) -> "ReadSide":
        """The same stores, holding other projections (e.g. a test-only one)."""
        if self.kind == "stack":
            assert self.redis is not None
            targets = stack_targets(
                self.db, self.redis, layout=self.layout, projections=projections
            )
        else:
            targets = sql_targets(self.db, projections)
        for target in targets:
            target.prepare()
        return ReadSide(self.kind, self.db, targets, self.redis, self.layout)


@contextmanager
def read_side(kind: str, tmp_path: Path, name: str = "read") -> Iterator[ReadSide]:
    """Every read model in SQLite, in a scratch PostgreSQL database, or in Redis (isolated by
    a key root of its own) plus a scratch PostgreSQL database (the stack)."""
    with ExitStack() as stack:
        if kind == "sqlite":
            db: SqlDatabase = SQLiteDatabase(tmp_path / f"{name}.sqlite")
        else:
            urls = stack.enter_context(scratch_databases(require_postgres(), name))
            db = PostgresDatabase(urls[name])
        stack.callback(db.close)
        if kind == "stack":
            client = Redis.from_url(require_redis(), decode_responses=True)
            layout = RedisLayout(root=f"rm_t{uuid.uuid4().hex[:10]}")
            stack.callback(client.close)
            stack.callback(_delete_keys, client, layout)
            targets = stack_targets(db, client, layout=layout)
            side = ReadSide(kind, db, targets, client, layout)
        else:
            side = ReadSide(kind, db, sql_targets(db))
        for target in side.targets:
            target.prepare()
        yield side


def _delete_keys(client: Redis, layout: RedisLayout) -> None:
    keys = list(client.scan_iter(match=f"{layout.root}:*", count=1000))
    if keys:
        client.delete(*keys)


def project(side: ReadSide, scenario: Scenario, batch: int = 1000) -> None:
    """Apply the scenario's whole log to every target, `batch` messages at a time."""
    for engine in side.engines():
        for context in engine.projection.contexts:
            messages = scenario.messages(context)
            for start in range(0, len(messages), batch):
                engine.handle(context, messages[start : start + batch])


def expected_dump(scenario: Scenario, tmp_path: Path) -> dict[str, Any]:
    """The scenario projected straight from the log (SQLite; dumps compare across stores)."""
    with read_side("sqlite", tmp_path, name="expected") as clean:
        project(clean, scenario)
        return dump_read_models(clean.targets)


def read_models_of(side: ReadSide, scenario: Scenario, tmp_path: Path) -> ReadModels:
    """The read models of `side` as `replay` sees them, over the scenario's event stores."""
    recorders = {s.name: s.recorder for s in scenario.services.all()}
    return ReadModels(
        side.db,
        {name: scenario.source(name) for name in recorders},
        lambda context: int(recorders[context].max_notification_id() or 0),
        side.redis,
        side.layout,
        lock_dir=tmp_path / "locks",
    )
