"""The stack mode's feed: one durable JetStream pull consumer per (context, partition set),
feeding every projection of that context in one pass.

- Consumer `proj_<context>_<partitions>` (`proj_orders_all`; a projector worker's
  `proj_orders_p03_e7`, named with its lease epoch), filter: the subjects of those partitions,
  acks `all` (one ack per batch, after every projection committed it),
  `max_ack_pending` = the fetch size, `ack_wait` well above a batch.
- Each batch is fetched and decoded once, then applied by each member projection's engine in
  turn: each commits its own checkpoint with its writes, as before; what a projection already
  has is a duplicate to it and changes nothing.
- On every attach the consumer is recreated at the stream sequence after the lowest checkpoint
  of the members it feeds, so no stale redelivery is pending.
- A member that cannot keep up does not hold the others back: one that is far behind at attach
  (added, or swapped in by a rebuild), one whose batch fails (its store is down, a rebuild's swap
  holds its pointer, Redis lost data) leaves the feed and runs on its own consumer
  (`projections.consumers.ConsumerRunner`, which retries, rewinds and backfills) from its own
  checkpoint. Once it is within `join_lag` positions of the feed it stops there, and the feed
  re-attaches with it (the others see at most that many duplicates).
- A worker's feed (projections.workers) stops for good on LeaseLost: a newer holder of its
  partition has committed, so nothing of this one may be.
- Parked events (dead letters) never stop the feed: the engine parks them per aggregate and
  retries them between batches, as before.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from eventlog.envelope import PARTITIONS
from eventlog.jetstream import ContextStream
from projections.consumers import (
    Backfill,
    BatchObserver,
    ConsumerOptions,
    ConsumerRunner,
    Reconnected,
    decode_batch,
    run_reporting_progress,
)
from projections.engine import Engine, Outcome
from projections.model import CheckpointLost, Message
from projections.outages import log_reattaching
from readmodels.checkpoints import Checkpoint
from readmodels.partition_checkpoints import LeaseLost

logger = logging.getLogger("strata.projections.feed")


@dataclass(frozen=True)
class Partitions:
    """The `pNN` partitions of a context's subjects a feed consumes: all of them (the
    default), or one (JetStream 2.9 filters a consumer by one subject)."""

    number: int | None = None

    @property
    def label(self) -> str:
        return "all" if self.number is None else f"p{self.number:02d}"

    def filter_subject(self, stream: ContextStream) -> str:
        if self.number is None:
            return stream.subjects
        return f"{stream.subject_root}.*.*.{self.label}"

    def __post_init__(self) -> None:
        if self.number is not None and not 0 <= self.number < PARTITIONS:
            raise ValueError(f"partition {self.number} is not in 0..{PARTITIONS - 1}")


ALL_PARTITIONS = Partitions()


class Member:
    """A projection the feed serves: on the feed, or catching up on its own consumer. Exposes
    what the metrics and the readiness check read of a consumer."""

    def __init__(self, feed: "ContextFeed", engine: Engine) -> None:
        self.feed = feed
        self.engine = engine
        self.checkpoint = Checkpoint()
        self.last_event_time: datetime | None = None
        self.solo: ConsumerRunner | None = None
        self.solo_task: asyncio.Task[None] | None = None

    @property
    def context(self) -> str:
        return self.feed.stream.context

    @property
    def name(self) -> str:
        return f"{self.feed.name}:{self.engine.projection.label}"

    @property
    def attached(self) -> bool:
        if self.solo is not None:
            return self.solo.attached
        return self.feed.attached

    def observe(self, outcome: Outcome) -> None:
        if outcome.checkpoint is not None:
            self.checkpoint = outcome.checkpoint
        if outcome.last_event_time is not None:
            self.last_event_time = outcome.last_event_time


class ContextFeed:
    def __init__(
        self,
        js: JetStreamContext,
        engines: Sequence[Engine],
        stream: ContextStream,
        options: ConsumerOptions | None = None,
        *,
        partitions: Partitions = ALL_PARTITIONS,
        backfill: Backfill | None = None,
        observe: BatchObserver | None = None,
        reconnects: Callable[[], int] | None = None,
        name_suffix: str = "",
        members_at_once: bool = True,
    ) -> None:
        """`name_suffix`: appended to the names of the feed's consumers and of its members' own
        (a worker's lease epoch, `_eE`: a new holder never shares one with a fenced one).
        `members_at_once`: the members apply a batch each in a thread of their own, so a
        projection's readers wait for its own write only; otherwise one after the other, for a
        process whose threads are shared by many feeds (a partition worker's)."""
        self._js = js
        self._members_at_once = members_at_once
        self.stream = stream
        self.options = options or ConsumerOptions()
        self.partitions = partitions
        self.name_suffix = name_suffix
        self.name = f"proj_{stream.context}_{partitions.label}{name_suffix}"
        self.lease_lost = False
        """The feed ended because a newer lease holder wrote one of its partition's checkpoints."""
        self.members = [Member(self, engine) for engine in engines]
        self._backfill = backfill
        self._observe = observe
        self._reconnects = reconnects or (lambda: 0)
        self._attached_after = 0
        self.attached = False
        self.delivered = 0
        """The position of the last message the feed handed to its members (a member whose
        checkpoint is within `join_lag` of it may join)."""
        self._next_seq = 1
        self._idle_check_at = 0.0
        self._rejoin = asyncio.Event()
        self._stopping: asyncio.Event | None = None

    @property
    def _filter(self) -> str:
        return self.partitions.filter_subject(self.stream)

    @property
    def on_feed(self) -> list[Member]:
        return [member for member in self.members if member.solo is None]

    async def run(self, stopping: asyncio.Event) -> None:
        """Attach and consume until `stopping` is set; re-attach after any failure, and when a
        member that caught up on its own joins."""
        self._stopping = stopping
        failures = 0
        try:
            while not stopping.is_set():
                subscription: JetStreamContext.PullSubscription | None = None
                try:
                    subscription = await self.attach()
                    failures = 0
                    while not stopping.is_set() and not self._rejoin.is_set():
                        await self.step(subscription)
                        if self._reconnects() != self._attached_after:
                            raise Reconnected
                except Reconnected:
                    logger.info("feed %s: NATS reconnected; re-attaching", self.name)
                except LeaseLost as lost:
                    logger.warning("feed %s stops: %s", self.name, lost)
                    self.lease_lost = True
                    return
                except Exception as error:  # noqa: BLE001 - logged; re-attached after a pause
                    pause = self.options.pauses[min(failures, len(self.options.pauses) - 1)]
                    failures += 1
                    log_reattaching(logger, error, f"feed {self.name}", pause)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), pause)
                finally:
                    self.attached = False
                    if subscription is not None:
                        with contextlib.suppress(Exception):
                            await subscription.unsubscribe()
        finally:
            solos = (self._end_solo(m) for m in self.members if m.solo_task)
            await asyncio.gather(*solos, return_exceptions=True)

    async def attach(self) -> JetStreamContext.PullSubscription | None:
        """(Re)create the consumer after the lowest checkpoint of the members on the feed; those
        far behind the others (or failing to answer) go catch up on their own first."""
        self._attached_after = self._reconnects()
        self._rejoin.clear()
        await self._join_caught_up()
        positions: dict[Member, Checkpoint] = {}
        for member in self.on_feed:
            member.engine.reload(member.context)
            try:
                positions[member] = await asyncio.to_thread(
                    member.engine.target.checkpoint, member.context
                )
            except Exception as error:  # noqa: BLE001 - it catches up on its own
                self._go_solo(member, error)
        info = await self._js.stream_info(self.stream.name)
        first, last = info.state.first_seq, info.state.last_seq
        head = max((c.position for c in positions.values()), default=0)
        for member, checkpoint in list(positions.items()):
            behind = head - checkpoint.position > self.options.join_lag
            aged_out = _next_seq(checkpoint, last) < first
            if behind or aged_out:
                self._go_solo(member, None)
                del positions[member]
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(self.stream.name, self.name)
        if not positions:
            self.delivered = head
            self.attached = True
            return None  # every member catches up on its own; it re-attaches when one joins
        lowest = min(positions.values(), key=lambda c: _next_seq(c, last))
        start = _next_seq(lowest, last)
        for member, checkpoint in positions.items():
            member.checkpoint = checkpoint
        self.delivered = lowest.position if start > 1 else 0
        await self._js.add_consumer(self.stream.name, self._config(start))
        subscription = await self._js.pull_subscribe_bind(
            durable=self.name, stream=self.stream.name
        )
        self._next_seq = start
        self._idle_check_at = time.monotonic() + self.options.idle_check
        self.attached = True
        logger.info(
            "feed %s attached at stream sequence %d for %s",
            self.name,
            start,
            ", ".join(m.engine.projection.label for m in positions),
        )
        return subscription

    def _config(self, start: int) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.name,
            description=f"strata projector feed, {self.stream.context} {self.partitions.label}",
            deliver_policy=DeliverPolicy.ALL if start <= 1 else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=None if start <= 1 else start,
            ack_policy=AckPolicy.ALL,
            ack_wait=self.options.ack_wait,
            max_deliver=self.options.max_deliver,
            max_ack_pending=self.options.batch_size,
            filter_subject=self.partitions.filter_subject(self.stream),
        )

    async def step(self, subscription: JetStreamContext.PullSubscription | None) -> int:
        """Fetch one batch and have every member on the feed apply it, then ack it; then retry
        the parked events whose pause is over. The number of messages fetched."""
        if subscription is None:  # nobody on the feed: wait for one to join
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rejoin.wait(), self.options.fetch_timeout)
            return 0
        try:
            fetched = await subscription.fetch(
                self.options.batch_size, timeout=self.options.fetch_timeout
            )
        except TimeoutError:
            fetched = []
        if fetched:
            await self._handle(fetched)
        elif time.monotonic() >= self._idle_check_at:
            await self._check_idle()
        for member in self.on_feed:
            if member.engine.retries_due(member.context):
                await asyncio.to_thread(member.engine.retry_due, member.context)
        return len(fetched)

    async def _handle(self, fetched: Sequence[Msg]) -> None:
        contiguous = self.partitions.number is None
        messages, self._next_seq = await decode_batch(
            fetched, self.name, self._next_seq, contiguous=contiguous
        )
        if messages:
            if self._members_at_once:  # each to its own target, under its own checkpoint
                applied = (self._apply(member, messages, fetched) for member in self.on_feed)
                for failed in await asyncio.gather(*applied, return_exceptions=True):
                    if isinstance(failed, BaseException):
                        raise failed
            else:
                for member in self.on_feed:
                    await self._apply(member, messages, fetched)
            self.delivered = max(self.delivered, messages[-1].position)
        await fetched[-1].ack()  # acks `all`: every message up to this one

    async def _apply(self, member: Member, messages: list[Message], fetched: Sequence[Msg]) -> None:
        started = time.monotonic()
        try:
            outcome = await run_reporting_progress(
                lambda: member.engine.handle(member.context, messages),
                fetched,
                self.options.ack_wait / 3,
            )
        except LeaseLost:
            raise
        except Exception as error:  # noqa: BLE001 - it catches up on its own
            self._go_solo(member, error)
            return
        member.observe(outcome)
        if self._observe is not None:
            self._observe(member, outcome, time.monotonic() - started)

    async def _check_idle(self) -> None:
        """While no message comes: a store that lost data is noticed (CheckpointLost)."""
        for member in self.on_feed:
            try:
                await asyncio.to_thread(member.engine.target.checkpoint, member.context)
            except Exception as error:  # noqa: BLE001 - it catches up on its own
                self._go_solo(member, error)
        self._idle_check_at = time.monotonic() + self.options.idle_check

    def _go_solo(self, member: Member, error: BaseException | None) -> None:
        """Take `member` off the feed: it catches up on its own consumer, then joins again."""
        label = member.engine.projection.label
        rewind = isinstance(error, CheckpointLost)
        if error is None:
            logger.info("feed %s: %s is behind; it catches up on its own", self.name, label)
        elif rewind:
            logger.warning("feed %s: %s; it re-projects on its own", self.name, error)
        else:
            logger.warning(
                "feed %s: %s failed (%s); it goes on on its own",
                self.name,
                label,
                str(error) or type(error).__name__,
            )
        solo = ConsumerRunner(
            self._js,
            member.engine,
            self.stream,
            self.options,
            backfill=self._backfill,
            observe=self._observe,
            reconnects=self._reconnects,
            filter_subject=None if self.partitions.number is None else self._filter,
            name_suffix=""
            if self.partitions.number is None
            else f"_{self.partitions.label}" + self.name_suffix,
        )
        member.solo = solo
        stopping = self._stopping or asyncio.Event()
        member.solo_task = asyncio.create_task(
            solo.run(stopping, rewind=rewind, done=lambda: self._caught_up(solo))
        )
        member.solo_task.add_done_callback(lambda _: self._rejoin.set())

    def _caught_up(self, solo: ConsumerRunner) -> bool:
        return solo.checkpoint.position >= self.delivered - self.options.join_lag

    async def _join_caught_up(self) -> None:
        for member in self.members:
            if member.solo_task is not None and member.solo_task.done():
                await self._end_solo(member)

    async def _end_solo(self, member: Member) -> None:
        solo, task = member.solo, member.solo_task
        if solo is None or task is None:
            return
        await task
        member.checkpoint = solo.checkpoint
        member.last_event_time = solo.last_event_time
        member.solo, member.solo_task = None, None
        with contextlib.suppress(Exception):
            await self._js.delete_consumer(self.stream.name, solo.name)
        logger.info("feed %s: %s joins", self.name, member.engine.projection.label)


def _next_seq(checkpoint: Checkpoint, last: int) -> int:
    """The stream sequence after a checkpoint (1: unknown, or past the stream's end)."""
    start = checkpoint.stream_seq + 1 if checkpoint.stream_seq else 1
    return 1 if start > last + 1 else start
