"""Orders' replica of users fed from the users' JetStream stream (`eventlog.replica_stream`), as
when the two contexts run as separate services: users commands on a PostgreSQL users store, the
real relay publishing them, a `StreamFeed` taking them into a PostgreSQL orders store.

Each test has scratch databases of its own and a stream namespace of its own, deleted after.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from logging import WARNING
from typing import Any, cast
from uuid import UUID

import pytest
from nats.aio.client import Client as NatsClient
from prometheus_client import CollectorRegistry

from contexts.registered import REGISTRY
from contexts.settings import Settings
from domain.orders.known_users import USERS
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.envelope import envelope_source
from eventlog.jetstream import connect, context_stream, ensure_stream
from eventlog.relay import Relay, RelayConfig
from eventlog.relay_main import open_event_store
from eventlog.relay_metrics import RelayMetrics
from eventlog.replica_stream import FETCH_TIMEOUT, StreamFeed
from eventlog.replicas import ReplicaChange, ReplicaCheckpoint, ReplicaIntake, ReplicaStore
from eventlog.stores import build_services
from runtime.settings import settings_model
from tests.support.api import unique_email
from tests.support.nats import delete_streams, new_namespace, require_nats
from tests.support.postgres import require_postgres, scratch_databases

pytestmark = pytest.mark.postgres

CTX = CommandContext(correlation_id="corr-replica-stream-test")
REPLICA = REGISTRY["orders"].replicas[0]
IDLE_FETCHES = 8
"""Fetch timeouts an idle feed waits through in the idle test."""
CONSUMER = "strata feed of users into orders"
"""The description of a feed's consumer."""


class RecordingStore:
    """The orders recorder, noting every change it is asked to take in."""

    def __init__(self, store: ReplicaStore) -> None:
        self._store = store
        self.applied: list[tuple[UUID, int]] = []

    def apply_replica_changes(
        self, upstream: str, changes: Sequence[ReplicaChange], checkpoint: ReplicaCheckpoint
    ) -> None:
        self._store.apply_replica_changes(upstream, changes, checkpoint)
        self.applied += [(change.aggregate_id, change.version) for change in changes]

    def replica_checkpoint(self, upstream: str) -> ReplicaCheckpoint:
        return self._store.replica_checkpoint(upstream)

    def replica_state(self, upstream: str, aggregate_id: UUID) -> Mapping[str, Any] | None:
        return self._store.replica_state(upstream, aggregate_id)


@dataclass
class Stack:
    """Users and orders as two services: each process builds its own context only."""

    settings: Settings
    users: UsersService
    orders: RecordingStore
    connections: list[NatsClient] = field(default_factory=list)
    """Every NATS connection a feed opened."""

    def act(self) -> dict[UUID, bool]:
        """Users commands: four registered, one renamed, two deactivated, one reactivated;
        whether each is active."""
        ids = [self.users.register(CTX, "Someone", unique_email()).id for _ in range(4)]
        self.users.rename(CTX, ids[0], "Someone Else")
        for user in ids[1:3]:
            self.users.deactivate(CTX, user)
        self.users.reactivate(CTX, ids[2])
        return {ids[0]: True, ids[1]: False, ids[2]: True, ids[3]: True}

    @property
    def last_position(self) -> int:
        return int(self.users.recorder.max_notification_id() or 0)

    def replica(self) -> dict[UUID, bool]:
        """Whether each user the replica holds is active."""
        return {user: bool(state["active"]) for user, state in self._states().items()}

    def _states(self) -> dict[UUID, Mapping[str, Any]]:
        log = envelope_source(self.users.recorder).select_envelopes(USERS, 0, 10_000)
        users = [envelope.aggregate_id for envelope in log]
        states = {user: self.orders.replica_state(USERS, user) for user in users}
        return {user: state for user, state in states.items() if state is not None}

    @asynccontextmanager
    async def feed(self) -> AsyncIterator[StreamFeed]:
        """A feed of orders' replica of users, running for the block."""

        async def connect_feed() -> NatsClient:
            nc = await connect(self.settings, name="test-replica-feed")
            self.connections.append(nc)
            return nc

        stream = context_stream(USERS, self.settings)
        intake = ReplicaIntake(self.orders, REPLICA)
        feed = StreamFeed("orders", intake, stream, connect_feed)
        await feed.start()
        try:
            yield feed
        finally:
            await feed.stop()

    @asynccontextmanager
    async def relay(self) -> AsyncIterator[None]:
        """The users' relay, publishing to their stream (made first) for the block."""
        factory, recorder = open_event_store(self.settings, USERS)
        nc = await connect(self.settings, name="test-relay")
        stop = asyncio.Event()
        try:
            await ensure_stream(nc.jetstream(), USERS, self.settings)
            relay = Relay(
                context=USERS,
                recorder=recorder,
                database_url=str(self.settings.database_url(USERS)),
                nc=nc,
                stream=context_stream(USERS, self.settings),
                metrics=RelayMetrics(CollectorRegistry(), USERS),
                config=RelayConfig(page_size=3, poll_interval=0.2),
            )
            task = asyncio.create_task(relay.run(stop))
            yield
            stop.set()
            await task
        finally:
            await nc.close()
            factory.close()

    async def consumer_starts(self) -> list[int]:
        """The start sequences of the feeds' consumers on the users' stream."""
        nc = await connect(self.settings, name="test-inspector")
        try:
            infos = await nc.jetstream().consumers_info(context_stream(USERS, self.settings).name)
        finally:
            await nc.close()
        return [int(i.config.opt_start_seq or 0) for i in infos if i.config.description == CONSUMER]


@pytest.fixture
def stack() -> Iterator[Stack]:
    postgres, nats_url = require_postgres(), require_nats()
    with scratch_databases(postgres, USERS, "orders") as urls:
        # The two contexts' settings only: the others' stores are not part of this test.
        settings = settings_model((USERS, "orders"))(
            users_database_url=urls[USERS],
            orders_database_url=urls["orders"],
            nats_url=nats_url,
            stream_namespace=new_namespace(),
            group_commit=False,
        )
        users = build_services(settings, REGISTRY.only(USERS))
        orders = build_services(settings, REGISTRY.only("orders"))
        try:
            store = cast(ReplicaStore, orders.orders.recorder)
            yield Stack(settings, users.application(UsersService), RecordingStore(store))
        finally:
            users.close()
            orders.close()
            delete_streams(nats_url, context_stream(USERS, settings).name)


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def test_the_feed_takes_in_every_users_state_and_reaches_positions_in_bounded_time(
    stack: Stack,
) -> None:
    expected = stack.act()
    last = stack.last_position

    async def main() -> None:
        async with stack.relay(), stack.feed() as feed:
            assert await feed.reach(last, timeout=20)
            assert feed.position() == last

            started = time.monotonic()
            assert not await feed.reach(last + 1, timeout=1.0)
            assert time.monotonic() - started < 2.5

    asyncio.run(main())
    assert stack.replica() == expected
    assert sorted(stack.orders.applied) == sorted(set(stack.orders.applied))


def test_a_restarted_feed_takes_nothing_in_twice_and_resumes_after_its_checkpoint(
    stack: Stack,
) -> None:
    first = stack.act()

    async def main() -> dict[UUID, bool]:
        async with stack.relay():
            async with stack.feed() as feed:
                assert await feed.reach(stack.last_position, timeout=20)
            checkpoint = stack.orders.replica_checkpoint(USERS)
            assert checkpoint.position == stack.last_position
            taken = len(stack.orders.applied)

            second = stack.act()  # relayed while no feed runs
            async with stack.feed() as feed:
                await until(lambda: feed.attached)
                assert await stack.consumer_starts() == [checkpoint.stream_seq + 1]
                assert await feed.reach(stack.last_position, timeout=20)
            assert {user for user, _ in stack.orders.applied[taken:]} == set(second)
            return second

    second = asyncio.run(main())
    assert stack.replica() == first | second
    assert len(stack.orders.applied) == len(set(stack.orders.applied)), "a change came twice"
    assert stack.connections and all(nc.is_closed for nc in stack.connections)


@pytest.mark.parametrize("stream", ["absent", "empty"])
def test_a_feed_started_before_its_upstream_catches_up_once_the_relay_runs(
    stack: Stack, stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    expected = stack.act()

    def failures() -> int:
        return sum(r.name == "strata.replicas" and r.levelno == WARNING for r in caplog.records)

    async def main() -> None:
        if stream == "empty":
            nc = await connect(stack.settings, name="test-stream-maker")
            await ensure_stream(nc.jetstream(), USERS, stack.settings)
            await nc.close()
        async with stack.feed() as feed:
            if stream == "empty":
                await until(lambda: feed.attached)
            else:
                await until(lambda: failures() >= 2)  # it keeps trying
                assert not feed.attached
            assert not await feed.reach(1, timeout=0.1)
            async with stack.relay():
                assert await feed.reach(stack.last_position, timeout=20)

    with caplog.at_level(WARNING, logger="strata.replicas"):
        asyncio.run(main())
    assert stack.replica() == expected


def test_an_idle_feed_stays_attached_and_takes_a_new_user_in_at_once(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """nats-py's fetch returns an empty batch, instead of timing out, when the server's 408
    ends the pull just before the client's own timeout: idle fetches must not fail the feed."""

    async def main() -> None:
        async with stack.relay(), stack.feed() as feed:
            await until(lambda: feed.attached)
            await asyncio.sleep(IDLE_FETCHES * FETCH_TIMEOUT)
            stack.users.register(CTX, "Newcomer", unique_email())
            assert await feed.reach(stack.last_position, timeout=2 * FETCH_TIMEOUT)

    with caplog.at_level(WARNING, logger="strata.replicas"):
        asyncio.run(main())
    assert [r.getMessage() for r in caplog.records if r.name == "strata.replicas"] == []
