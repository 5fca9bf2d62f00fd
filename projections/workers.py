"""The projector's partitioned mode (`STRATA_PROJECTOR_MODE=partitioned`): each projector process
is a worker that holds leases on a share of the `pNN` partitions (projections/leases.py) and
consumes only those.

Every `STRATA_PROJECTOR_REBALANCE_SECONDS` a worker runs one round:

1. a partition whose feed ended on LeaseLost (a newer holder wrote its checkpoint) is stopped
   and released;
2. the partitions beyond its fair share are stopped, then released (never the other way round:
   a partition released while still consumed could be written by two holders);
3. free partitions are taken up to its share, each under a new epoch, and started.

A started partition has one feed per context (`ContextFeed` with `Partitions({p})`) over targets
bound to the lease (`following_targets(..., lease=...)`): their checkpoints are that partition's,
written with the lease's epoch, so a holder that lost its lease without noticing cannot commit
after its heir has. The feed's durable consumer is named with the epoch
(`proj_<context>_pNN_eE`): a new holder never shares a consumer with a fenced one, and it deletes
the older epochs' consumers of its partition when it starts.

A lost lease session (the read database restarted, a network split) loses every lease at once:
the worker stops every partition, closes its NATS connection and joins again, so outages heal
with no human action. Modes exclude each other: a worker holds the single projector's leader
lock in shared mode while it is a member (projections/leader.py takes it exclusively).
"""

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import nats.errors
import psycopg
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from eventlog.envelope import EventEnvelope
from eventlog.jetstream import connect, context_stream, ensure_stream
from projections import stack
from projections.engine import Engine, Target
from projections.feed import ContextFeed, Member, Partitions
from projections.leases import Lease, PartitionLeases
from projections.metrics import ProjectorMetrics
from projections.model import Projection
from projections.stack import STANDBY_PAUSES, StackProjector
from projections.targets import following_targets
from runtime.opening import finished_before

logger = logging.getLogger("strata.projections.workers")

EPOCH_SUFFIX = re.compile(r"_p(\d{2})_e(\d+)$")
"""The end of a worker's consumer name: its partition and lease epoch."""


@dataclass
class Held:
    """A partition this worker consumes: its lease, feeds, and what stops them."""

    lease: Lease
    feeds: list[ContextFeed]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def lost(self) -> bool:
        return any(feed.lease_lost for feed in self.feeds)


class ProjectorWorker:
    def __init__(self, projector: StackProjector, name: str | None = None) -> None:
        """`projector`: its settings, read stores, options and metrics are the worker's."""
        self.projector = projector
        settings = projector.settings
        assert settings.read_database_url is not None
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.leases = PartitionLeases(
            settings.read_database_url,
            settings.stream_namespace,
            self.name,
            exclusive_of=projector.leader.name,
        )
        self.held: dict[int, Held] = {}
        self._nc: NatsClient | None = None

    @property
    def metrics(self) -> ProjectorMetrics:
        return self.projector.metrics

    @property
    def runners(self) -> list[Member]:
        return [m for held in self.held.values() for feed in held.feeds for m in feed.members]

    async def run(self, stop: asyncio.Event) -> None:
        """Join, rebalance every round, consume what is held; until `stop` is set."""
        failures = 0
        while not stop.is_set():
            try:
                joining = asyncio.create_task(self._join())
                if not await finished_before(joining, stop):  # stopped while a try was in flight
                    break
                joining.result()
                failures = 0
                await self._rounds(stop)
            except (psycopg.Error, OSError, nats.errors.Error, TimeoutError) as error:
                pause = STANDBY_PAUSES[min(failures, len(STANDBY_PAUSES) - 1)]
                failures += 1
                logger.warning(
                    "worker %s: %s; every partition stopped, joining again in %g s",
                    self.name,
                    str(error).strip() or type(error).__name__,
                    pause,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
            finally:
                await self._leave()

    async def _join(self) -> None:
        projector = self.projector
        await asyncio.to_thread(self.leases.join)
        self._nc = await connect(projector.settings, name=f"strata-projector-{self.name}")
        js = self._nc.jetstream()
        for context in projector.contexts.names:
            await ensure_stream(js, context, projector.settings)
        projector.use_executor(PARTITION_THREADS)
        # Tables, pointers and checkpoint rows once: a partition's targets then need none (their
        # partition checkpoints are upserted), so taking over partitions is quick.
        for target in following_targets(
            projector.read_db,
            projector.redis,
            layout=projector.layout,
            projections=projector.contexts.projections(),
        ):
            await asyncio.to_thread(target.prepare)
        logger.info("worker %s joined", self.name)

    async def _rounds(self, stop: asyncio.Event) -> None:
        interval = self.projector.settings.projector_rebalance_seconds
        watch = asyncio.create_task(self._watch())
        try:
            while not stop.is_set():
                if not await asyncio.to_thread(self.leases.still_held):
                    raise psycopg.OperationalError("the lease session ended")
                await self.round()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
        finally:
            watch.cancel()

    async def _watch(self) -> None:
        """Refresh the lag metrics every WATCH_INTERVAL (see `observe_lag`)."""
        while True:
            await asyncio.sleep(stack.WATCH_INTERVAL)
            try:
                await self.observe_lag()
            except Exception as error:  # noqa: BLE001 - metrics only; logged, retried
                logger.warning("could not refresh the lag metrics: %s", error)

    async def observe_lag(self) -> None:
        """Per feed of a held partition: the messages of its partition not yet acked (pending
        in its consumer) and the age of the oldest of them. Per projection and context, the
        sum and the oldest over the partitions held (a projection catching up on its own
        consumer: that consumer's)."""
        if self._nc is None:
            return
        js = self._nc.jetstream()
        lags: dict[tuple[str, int, str], tuple[int, float]] = {}
        models: dict[tuple[str, int, str], Projection] = {}
        for held in list(self.held.values()):
            for feed in held.feeds:
                stream, subject = feed.stream.name, feed.partitions.filter_subject(feed.stream)
                on_feed = await _consumer_lag(js, stream, subject, feed.name)
                self.metrics.observe_feed_lag(feed.name, feed.stream.context, *on_feed)
                for member in feed.members:
                    # one catching up on its own consumer: that consumer's lag
                    solo = member.solo
                    events, seconds = (
                        on_feed
                        if solo is None
                        else await _consumer_lag(js, stream, subject, solo.name)
                    )
                    p = member.engine.projection  # one object per partition: key by name
                    key = (p.name, p.version, feed.stream.context)
                    models[key] = p
                    total, oldest = lags.get(key, (0, 0.0))
                    lags[key] = (total + events, max(oldest, seconds))
        for key, (events, seconds) in lags.items():
            self.metrics.observe_partitions_lag(models[key], key[2], events, seconds)

    async def round(self) -> None:
        """One rebalancing round (see the module's doc)."""
        lost = [p for p, held in self.held.items() if held.lost]
        for partition in lost:
            logger.warning("worker %s: p%02d was taken over; releasing it", self.name, partition)
        surplus = [p for p in await asyncio.to_thread(self.leases.surplus) if p not in lost]
        if surplus:
            logger.info("worker %s: giving up %s", self.name, _labels(surplus))
        await self._stop_partitions([*lost, *surplus])
        taken = await asyncio.to_thread(self.leases.rebalance)
        for lease in taken.acquired:
            await self._start_partition(lease)
        if taken.acquired:
            logger.info(
                "worker %s holds %s (%d workers)", self.name, _labels(self.held), taken.members
            )

    async def _start_partition(self, lease: Lease) -> None:
        projector = self.projector
        assert self._nc is not None
        nc, js = self._nc, self._nc.jetstream()
        targets = following_targets(
            projector.read_db,
            projector.redis,
            layout=projector.layout,
            projections=projector.contexts.projections(),
            lease=lease,
        )
        suffix = f"_e{lease.epoch}"
        held = Held(lease, [])
        for context in projector.contexts.names:
            stream = context_stream(context, projector.settings)
            await _delete_older_consumers(js, stream.name, lease)
            held.feeds.append(
                ContextFeed(
                    js,
                    [
                        Engine(t, projector.policy, partition=lease.partition)
                        for t in _reading(targets, context)
                    ],
                    stream,
                    projector.options,
                    partitions=Partitions(lease.partition),
                    backfill=_partition_backfill(projector, lease.partition),
                    observe=projector.metrics.observe_batch,
                    reconnects=lambda: int(nc.stats["reconnects"]),
                    name_suffix=suffix,
                    members_at_once=False,  # PARTITION_THREADS serve every partition's feeds
                )
            )
        held.tasks = [asyncio.create_task(feed.run(held.stopping)) for feed in held.feeds]
        self.held[lease.partition] = held

    async def _stop_partitions(self, partitions: list[int], *, release: bool = True) -> None:
        """Finish the partitions' batches in hand (all at once), delete their consumers, then
        release them."""
        stopped = [self.held.pop(p) for p in partitions if p in self.held]
        for held in stopped:
            held.stopping.set()
        tasks = [task for held in stopped for task in held.tasks]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=30)
            for task in pending:
                task.cancel()
        for held in stopped:
            for feed in held.feeds:
                self.metrics.forget_feed(feed.name, feed.stream.context)
            await self._delete_consumers(held)
            if release:
                await asyncio.to_thread(self.leases.release, held.lease.partition)

    async def _delete_consumers(self, held: Held) -> None:
        if self._nc is None or not self._nc.is_connected:
            return  # a killed worker's are deleted by the partition's next holder
        js = self._nc.jetstream()
        after = Lease(held.lease.partition, held.lease.epoch + 1)
        for feed in held.feeds:
            with contextlib.suppress(Exception):
                await _delete_older_consumers(js, feed.stream.name, after)

    async def _leave(self) -> None:
        """Stop every partition, close NATS, end the lease session (every lease goes)."""
        await self._stop_partitions(list(self.held), release=False)
        if self._nc is not None:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await asyncio.wait_for(self._nc.close(), 5)
            self._nc = None
        self.metrics.forget_consumers()
        await asyncio.to_thread(self.leases.close)

    async def problems(self) -> dict[str, str]:
        """What keeps the worker from being ready (empty when ready)."""
        found: dict[str, str] = {}
        if not self.leases.joined:
            found["leases"] = "not a member: cannot reach the read database"
            return found
        if not self.held:
            found["leases"] = "holding no partition yet"
        if self._nc is None or not self._nc.is_connected:
            found["nats"] = "not connected"
        for runner in self.runners:
            if not runner.attached:
                found[runner.name] = "consumer not attached"
        return found


PARTITION_THREADS = 8
"""Threads for the batches of all the partitions' feeds. Each batch in flight holds a read
database connection, and a worker's SQL batches of one projection wait for each other anyway
(one advisory lock per projection), so a few threads keep every worker's connections few."""


async def _consumer_lag(
    js: JetStreamContext, stream: str, subject: str, consumer: str
) -> tuple[int, float]:
    """(messages not yet acked, age of the oldest) of a partition's consumer: its pending
    messages, and the first message of its partition after its ack floor."""
    try:
        info = await js.consumer_info(stream, consumer)
    except NotFoundError:
        return 0, 0.0  # not attached: nobody on the feed, or not created yet
    events = (info.num_pending or 0) + (info.num_ack_pending or 0)
    if not events:
        return 0, 0.0
    floor = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
    try:
        message = await js.get_msg(stream, seq=floor + 1, subject=subject, next=True)
    except NotFoundError:
        return events, 0.0
    committed = EventEnvelope.from_json(message.data or b"{}").timestamp
    return events, max(0.0, (datetime.now(UTC) - committed).total_seconds())


def _labels(partitions: Iterable[int]) -> str:
    return ",".join(f"p{p:02d}" for p in sorted(partitions))


def _reading(targets: list[Target], context: str) -> list[Target]:
    return [t for t in targets if context in t.projection.contexts]


def _partition_backfill(projector: StackProjector, partition: int) -> Callable[[Engine, str], int]:
    def backfill(engine: Engine, context: str) -> int:
        return projector.backfill(engine, context, partition=partition)

    return backfill


async def _delete_older_consumers(js: JetStreamContext, stream: str, lease: Lease) -> None:
    """Delete the consumers of `lease`'s partition named with an older epoch (fenced holders',
    a killed worker's). Best effort: such a consumer has no reader and its holder is fenced, so
    one left behind costs only its state, and the partition's next holder tries again."""
    try:
        infos = await js.consumers_info(stream)
    except Exception as error:  # noqa: BLE001 - nats-py raised AttributeError on a null entry
        logger.warning("the consumers of %s could not be listed, none deleted: %r", stream, error)
        return
    for info in infos:
        name = info.name or ""
        match = EPOCH_SUFFIX.search(name)
        if match and int(match.group(1)) == lease.partition and int(match.group(2)) < lease.epoch:
            with contextlib.suppress(Exception):
                await js.delete_consumer(stream, name)
