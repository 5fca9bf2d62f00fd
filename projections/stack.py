"""The projector of the stack mode, composed: settings → read stores → NATS → one feed per
(context, partition set) serving every projection of the context (projections.feed), plus the
lag and dead-letter watch behind /metrics. The projections are
those the registered contexts declare (or another registry's, given as `contexts`).

A projector is a hot standby until it holds the leader lock (projections/leader.py); then it
consumes for one term, which ends when the lock's session is lost (the database restarted, a
network split) or on a signal. After a lost lock it stops its consumers cleanly, releases
everything and is a standby again: any outage of PostgreSQL, NATS or Redis heals without a
restart. A Redis that comes back with less than it had (empty, or an older snapshot) has the
models it lost re-projected by their consumers (projections.consumers)."""

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import nats.errors
import psycopg
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from psycopg.conninfo import conninfo_to_dict
from redis import Redis

from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings, database_url_variables
from eventlog.envelope import EventEnvelope, envelope_source
from eventlog.jetstream import (
    connect,
    context_stream,
    ensure_stream,
    last_message,
    message_after,
)
from eventlog.stores import Services, build_services
from projections import dead_letters
from projections.catchup import catch_up
from projections.consumers import Consumer, ConsumerOptions
from projections.engine import Engine, RetryPolicy, Target
from projections.feed import ALL_PARTITIONS, ContextFeed, Member, Partitions
from projections.leader import LeaderLock
from projections.metrics import ProjectorMetrics
from projections.targets import following_targets
from readmodels.keys import RedisLayout
from readmodels.sql import PostgresDatabase

logger = logging.getLogger("strata.projections.stack")

WATCH_INTERVAL = 5.0
STANDBY_RETRY = 0.5
STANDBY_PAUSES = (0.5, 1.0, 2.0, 5.0)
"""Pauses while the read database cannot be reached (the last one repeats)."""
POSITION_HEADER = "Strata-Position"


def stack_problem(settings: Settings, contexts: Registry = REGISTRY) -> str | None:
    """Why these settings cannot run the projector, in one sentence (None if they can)."""
    if settings.mode != "stack":
        return (
            f"the projector runs in the stack mode (set {database_url_variables(contexts)});"
            " in the embedded mode the write API runs the fan-out"
        )
    if not settings.read_database_url:
        return "the stack mode needs STRATA_READ_DATABASE_URL (the read-model database)"
    if not settings.redis_url:
        return "the stack mode needs STRATA_REDIS_URL (the Redis read models)"
    read = _database_identity(settings.read_database_url)
    for context in contexts.names:
        if read == _database_identity(settings.database_url(context) or ""):
            return (
                f"STRATA_READ_DATABASE_URL names the {context} event store's database;"
                " the read models need a database of their own"
            )
    return None


def _database_identity(url: str) -> tuple[str, str, str]:
    params = conninfo_to_dict(url)
    return (
        str(params.get("host") or "localhost"),
        str(params.get("port") or "5432"),
        str(params.get("dbname") or params.get("user") or ""),
    )


class StackProjector:
    def __init__(
        self,
        settings: Settings,
        *,
        options: ConsumerOptions | None = None,
        policy: RetryPolicy | None = None,
        layout: RedisLayout | None = None,
        metrics: ProjectorMetrics | None = None,
        contexts: Registry = REGISTRY,
        partitions: Partitions = ALL_PARTITIONS,
    ) -> None:
        """`partitions`: the partitions of every context's subjects this process consumes.
        Checkpoints are kept per context, so only all of them can be consumed by one process
        for now: a partition set per worker needs the targets to write per-partition
        checkpoints under a lease (projections.leases; docs/scaling.md)."""
        if partitions != ALL_PARTITIONS:
            raise ValueError(
                "a projector consumes all partitions for now"
                " (the worker mode over partition leases is not built yet)"
            )
        problem = stack_problem(settings, contexts)
        if problem is not None:
            raise ValueError(problem)
        self.settings = settings
        self.contexts = contexts
        assert settings.read_database_url is not None
        assert settings.redis_url is not None
        self.read_db = PostgresDatabase(
            settings.read_database_url, pool_size=len(contexts) * 6, timeout=5.0
        )
        self.redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
        )
        self.options = options or ConsumerOptions(batch_size=settings.projector_batch_size)
        self.policy = policy
        self.layout = layout or RedisLayout()
        self.metrics = metrics or ProjectorMetrics()
        self.partitions = partitions
        self.feeds: list[ContextFeed] = []
        self.targets: list[Target] = []
        self._term_over = asyncio.Event()
        """Set when this term as the leader ends: a signal, or the lock was lost."""
        self._tasks: list[asyncio.Task[None]] = []
        self._nc: NatsClient | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stores: Services | None = None
        self._stores_lock = threading.Lock()
        self.leader = LeaderLock(
            settings.read_database_url, f"strata-projector:{settings.stream_namespace}"
        )

    async def lead(self, stop: asyncio.Event) -> bool:
        """Wait as a hot standby until this projector holds the leader lock (False: `stop` was
        set first). A database that cannot be reached is waited for, with growing pauses."""
        failures = 0
        while not stop.is_set():
            try:
                if await asyncio.to_thread(self.leader.try_acquire):
                    logger.info("holding the projector lock: consuming")
                    return True
                failures, pause = 0, STANDBY_RETRY
            except psycopg.Error as error:
                pause = STANDBY_PAUSES[min(failures, len(STANDBY_PAUSES) - 1)]
                failures += 1
                logger.warning(
                    "standby: cannot reach the read database for the projector lock (%s);"
                    " trying again in %g s",
                    str(error).strip() or type(error).__name__,
                    pause,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
        return False

    async def start(self) -> None:
        """Open the read stores, connect to NATS, make sure the streams exist, start consuming.

        Call it once `lead()` returned True; `stop_consuming()` ends the term (also after a
        failed start). Raises if a dependency cannot be reached.
        """
        settings = self.settings
        self._term_over.clear()
        self.targets = following_targets(
            self.read_db, self.redis, layout=self.layout, projections=self.contexts.projections()
        )
        for target in self.targets:
            await asyncio.to_thread(target.prepare)
        nc = self._nc = await connect(settings, name="strata-projector")
        js = nc.jetstream()
        for context in self.contexts.names:
            await ensure_stream(js, context, settings)
        self.feeds = [
            ContextFeed(
                js,
                [Engine(t, self.policy) for t in self.targets if context in t.projection.contexts],
                context_stream(context, settings),
                self.options,
                partitions=self.partitions,
                backfill=self.backfill,
                observe=self.metrics.observe_batch,
                reconnects=lambda: int(nc.stats["reconnects"]),
            )
            for context in self.contexts.names
        ]
        # Batches run in threads (a feed's members' at once, and those of projections catching
        # up on their own); leave room for checks and metrics.
        members = sum(len(feed.members) for feed in self.feeds)
        self.use_executor(members + len(self.targets) + 4)
        self._tasks = [asyncio.create_task(feed.run(self._term_over)) for feed in self.feeds]
        self._tasks.append(asyncio.create_task(self._watch()))

    @property
    def runners(self) -> list[Member]:
        """Every projection's consumption, per context: on its feed or catching up alone."""
        return [member for feed in self.feeds for member in feed.members]

    async def term_over(self) -> None:
        """Returns once this term as the leader ends (the lock was lost, or it was stopped)."""
        await self._term_over.wait()

    async def stop_consuming(self, timeout: float = 30.0) -> None:
        """End the term: finish the batches in hand (commit and ack them), close the NATS
        connection, release the lock. The projector is a standby again."""
        self._term_over.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
        self._tasks = []
        self.feeds = []
        if self._nc is not None:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await asyncio.wait_for(self._nc.drain(), 5)
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await asyncio.wait_for(self._nc.close(), 5)
            self._nc = None
        self.metrics.forget_consumers()
        await asyncio.to_thread(self.leader.release)

    async def close(self) -> None:
        """Close every connection (after `stop_consuming`)."""
        await self.stop_consuming()
        self.redis.close()
        self.read_db.close()
        if self._stores is not None:
            self._stores.close()

    async def problems(self) -> dict[str, str]:
        """What keeps the projector from being ready (empty when ready)."""
        found: dict[str, str] = {}
        if not self.leader.held:
            found["leader"] = "standby: not holding the projector lock"
            return found
        if self._nc is None or not self._nc.is_connected:
            found["nats"] = "not connected"
        for consumer in self.runners:
            if not consumer.attached:
                found[consumer.name] = "consumer not attached"
        checks: dict[str, Callable[[], Any]] = {
            "redis": self.redis.ping,
            "read_database": self.read_db.ping,
        }
        for name, check in checks.items():
            try:
                await asyncio.wait_for(asyncio.to_thread(check), 3)
            except Exception as error:  # noqa: BLE001 - reported, not raised
                found[name] = str(error) or type(error).__name__
        return found

    def use_executor(self, threads: int) -> None:
        """Run the event loop's threads (`asyncio.to_thread`) on a pool of `threads` (once)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(threads, thread_name_prefix="projector")
            asyncio.get_running_loop().set_default_executor(self._executor)

    def backfill(self, engine: Engine, context: str, *, partition: int | None = None) -> int:
        """Catch a read model up from the event store (the stream lost what it needs); with
        `partition`, a worker's engine: only that partition's events."""
        with self._stores_lock:
            if self._stores is None:
                settings = self.settings.model_copy(update={"group_commit": False})
                self._stores = build_services(settings, self.contexts)
            service = self._stores[context]
        return catch_up(
            envelope_source(service.recorder),
            context,
            [engine],
            page_size=self.settings.projector_batch_size,
            partition=partition,
        )

    async def _watch(self) -> None:
        while not self._term_over.is_set():
            if not await asyncio.to_thread(self.leader.still_held):
                logger.error(
                    "lost the projector lock (its database session ended): back to standby"
                )
                self._term_over.set()
                return
            try:
                await self._observe()
            except Exception as error:  # noqa: BLE001 - metrics only; logged, retried
                logger.warning("could not refresh the lag metrics: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._term_over.wait(), WATCH_INTERVAL)

    async def _observe(self) -> None:
        assert self._nc is not None
        js = self._nc.jetstream()
        for feed in self.feeds:
            stream = feed.stream.name
            message = await last_message(js, stream)
            position = 0 if message is None else _position_of(message.headers, message.data)
            lags = [
                self.metrics.observe_lag(
                    runner, position, await self._oldest_unapplied(js, stream, runner, position)
                )
                for runner in (member.solo or member for member in feed.members)
            ]
            events = max((lag[0] for lag in lags), default=0)
            seconds = max((lag[1] for lag in lags), default=0.0)
            self.metrics.observe_feed_lag(feed.name, feed.stream.context, events, seconds)
        depth = await asyncio.to_thread(self._dead_letter_depth)
        self.metrics.observe_dead_letters([t.projection for t in self.targets], depth)

    async def _oldest_unapplied(
        self, js: JetStreamContext, stream: str, runner: Consumer, last_position: int
    ) -> datetime | None:
        """The commit time of the first event after the runner's checkpoint (None when caught
        up, or when its checkpoint carries no stream sequence)."""
        checkpoint = runner.checkpoint
        if checkpoint.position >= last_position or not checkpoint.stream_seq:
            return None
        message = await message_after(js, stream, checkpoint.stream_seq)
        if message is None:
            return None
        return EventEnvelope.from_json(message.data or b"{}").timestamp

    def _dead_letter_depth(self) -> dict[tuple[str, int], int]:
        with self.read_db.transaction(write=False) as tx:
            return dead_letters.depth(tx)


def _position_of(headers: dict[str, str] | None, data: bytes | None) -> int:
    if headers and POSITION_HEADER in headers:
        return int(headers[POSITION_HEADER])
    return EventEnvelope.from_json(data or b"{}").position
