"""Redis losing data under a running projector (issue 7, item 8): a Redis without persistence
restarts empty, one with periodic snapshots restarts from an older one. Either way the checkpoints
of the Redis models go back behind what the projector wrote; it must notice, recreate each such
consumer at the checkpoint Redis holds, and re-project from there (from the event store when the
stream no longer holds the start), so that the read models end equal to a clean projection.

Real JetStream (a namespace of its own), a scratch Redis database (flushed and restored here as
a restart would), a scratch PostgreSQL read database; the projector's own targets, following the
active version, as the stack runs them.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from redis import Redis

from contexts.registered import REGISTRY
from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.jetstream import ContextStream
from projections.catchup import catch_up
from projections.consumers import ConsumerOptions, ConsumerRunner
from projections.engine import Engine, Target
from projections.redis_target import RedisDocumentTarget
from projections.targets import following_targets, stack_targets
from readmodels.sql import PostgresDatabase
from tests.support.dumps import dump_read_models
from tests.support.nats import (
    create_stream,
    publish,
    require_nats,
    with_js,
)
from tests.support.postgres import require_postgres, scratch_databases
from tests.support.projections import (
    FAST,
    Scenario,
    expected_dump,
)
from tests.support.read_models import SCRATCH_CLAIM, require_redis, scratch_redis_database

CONTEXTS = REGISTRY.names
"""Every context's stream: the scenario writes users' and orders' events, the others stay empty."""
OPTIONS = ConsumerOptions(
    batch_size=8, fetch_timeout=0.2, ack_wait=5, max_deliver=5, pauses=(0.1,), idle_check=0.2
)
CATCH_UP_SECONDS = 30.0
Snapshot = dict[bytes, bytes]


@pytest.fixture
def redis_db() -> Iterator[Redis]:
    with scratch_redis_database(require_redis()) as url:
        client = Redis.from_url(url)
        yield client
        client.close()


@pytest.fixture
def read_db() -> Iterator[PostgresDatabase]:
    with scratch_databases(require_postgres(), "read") as urls:
        db = PostgresDatabase(urls["read"])
        yield db
        db.close()


class Projector:
    """The stack projector's consumers over the scenario's streams, run as tasks."""

    def __init__(
        self,
        js: JetStreamContext,
        streams: dict[str, ContextStream],
        scenario: Scenario,
        read_db: PostgresDatabase,
        redis_db: Redis,
    ) -> None:
        self.js, self.streams, self.scenario = js, streams, scenario
        self.published = dict.fromkeys(CONTEXTS, 0)
        targets = following_targets(read_db, redis_db)
        for target in targets:
            target.prepare()
        self.runners = [
            ConsumerRunner(js, Engine(t, FAST), streams[c], OPTIONS, backfill=self._backfill)
            for t in targets
            for c in t.projection.contexts
        ]
        self._stores = (read_db, redis_db)

    def observed(self) -> list[Target]:
        """Targets of their own, new (remembering nothing), to read the checkpoints as the read
        API does."""
        return stack_targets(*self._stores)

    def _backfill(self, engine: Engine, context: str) -> int:
        return catch_up(self.scenario.source(context), context, [engine])

    async def publish_new_events(self) -> None:
        for context in CONTEXTS:
            envelopes = self.scenario.envelopes(context, after=self.published[context])
            await publish(self.js, self.streams[context], envelopes)
            if envelopes:
                self.published[context] = envelopes[-1].position

    async def caught_up(self) -> None:
        """Until every read model's checkpoint, in Redis or PostgreSQL, is at its head."""

        def behind() -> list[str]:
            return [
                f"{t.projection.label} at {c}:{t.checkpoint(c).position}"
                for t in self.observed()
                for c in t.projection.contexts
                if t.checkpoint(c).position != self.published[c]
            ]

        deadline = asyncio.get_running_loop().time() + CATCH_UP_SECONDS
        while lagging := await asyncio.to_thread(behind):
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"not caught up with {self.published}: {lagging}")
            await asyncio.sleep(0.05)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        stopping = asyncio.Event()
        tasks = [asyncio.create_task(runner.run(stopping)) for runner in self.runners]
        try:
            yield
        finally:
            stopping.set()
            await asyncio.gather(*tasks)


def restart_redis_from(client: Redis, snapshot: Snapshot) -> None:
    """What Redis holds after a restart: nothing (no persistence) or an older snapshot. The
    scratch database's claim is kept, so the database stays ours."""
    claim = client.get(SCRATCH_CLAIM)
    client.flushdb()
    for key, value in snapshot.items():
        client.restore(key, 0, value)
    if claim is not None:
        client.set(SCRATCH_CLAIM, claim)


def snapshot_of(client: Redis) -> Snapshot:
    dumped = {key: client.dump(key) for key in client.scan_iter(match="rm:*", count=1000)}
    return {key: value for key, value in dumped.items() if isinstance(value, bytes)}


def redis_checkpoints(projector: Projector) -> dict[str, int]:
    return {
        f"{t.projection.name} {c}": t.checkpoint(c).position
        for t in projector.observed()
        if isinstance(t, RedisDocumentTarget)
        for c in t.projection.contexts
    }


def more_users_events(scenario: Scenario) -> None:
    ctx = CommandContext(correlation_id="after")
    users = scenario.services.application(UsersService)
    users.rename(ctx, scenario.users["ada"], "Ada, after the restart")
    users.add_hobby(ctx, scenario.users["bob"], "Sailing")


def more_of_everything(scenario: Scenario, city: str) -> None:
    ctx = CommandContext(correlation_id="later")
    orders, bob = scenario.services.application(OrdersService), scenario.users["bob"]
    order = orders.create_order(ctx, bob, "EUR").id
    orders.add_line(ctx, order, "F", 2, Decimal("12.50"))
    orders.place(ctx, order)
    orders.mark_paid(ctx, order)
    scenario.services.application(UsersService).change_location(ctx, bob, city, "FR")


def test_a_redis_restarted_empty_is_re_projected_from_the_start(
    streams: dict[str, ContextStream],
    scenario: Scenario,
    redis_db: Redis,
    read_db: PostgresDatabase,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The orders stream keeps its last five messages only, so re-projecting the orders models
    from position 0 needs the event store; no orders event follows the loss, so their consumers
    must notice it while idle."""

    async def work(js: JetStreamContext) -> None:
        await create_stream(js, streams["users"])
        await create_stream(js, streams["orders"], max_msgs=5)
        projector = Projector(js, streams, scenario, read_db, redis_db)
        async with projector.running():
            await projector.publish_new_events()
            await projector.caught_up()
            restart_redis_from(redis_db, {})
            more_users_events(scenario)
            await projector.publish_new_events()
            await projector.caught_up()

    caplog.set_level(logging.WARNING, logger="strata.projections.consumers")
    with_js(require_nats(), work)
    lost = [r.getMessage() for r in caplog.records if "Redis lost checkpoint" in r.getMessage()]
    assert sorted(message.split(":")[0] for message in lost) == [
        "Redis lost checkpoint for top_spenders",
        "Redis lost checkpoint for user_profiles",
        "Redis lost checkpoint for user_stats",
    ]
    assert all("re-projecting from 0" in message for message in lost)
    assert dump_read_models(stack_targets(read_db, redis_db)) == expected_dump(scenario, tmp_path)


def test_a_redis_restarted_from_an_older_snapshot_is_re_projected_from_its_checkpoints(
    streams: dict[str, ContextStream],
    scenario: Scenario,
    redis_db: Redis,
    read_db: PostgresDatabase,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rolled_back_to: dict[str, int] = {}

    async def work(js: JetStreamContext) -> None:
        for stream in streams.values():
            await create_stream(js, stream)
        projector = Projector(js, streams, scenario, read_db, redis_db)
        async with projector.running():
            await projector.publish_new_events()
            await projector.caught_up()
            older = await asyncio.to_thread(snapshot_of, redis_db)
            rolled_back_to.update(redis_checkpoints(projector))
            more_of_everything(scenario, "Paris")
            await projector.publish_new_events()
            await projector.caught_up()
            restart_redis_from(redis_db, older)
            assert redis_checkpoints(projector) == rolled_back_to
            more_of_everything(scenario, "Lyon")
            await projector.publish_new_events()
            await projector.caught_up()

    caplog.set_level(logging.WARNING, logger="strata.projections.consumers")
    with_js(require_nats(), work)
    lost = {
        r.getMessage().split(";")[0]
        for r in caplog.records
        if "Redis lost checkpoint" in r.getMessage()
    }
    assert lost == {
        f"Redis lost checkpoint for {name}:v1 ({context}): re-projecting from {position}"
        for name_context, position in rolled_back_to.items()
        for name, context in [name_context.split()]
    }
    assert dump_read_models(stack_targets(read_db, redis_db)) == expected_dump(scenario, tmp_path)
