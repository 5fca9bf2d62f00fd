"""The stack mode's feed: a durable JetStream pull consumer per (projection, context).

- Consumer `proj_<name>_v<k>_<context>`, filter `es.<context>.>`, explicit acks,
  `max_ack_pending` = the fetch size, finite `max_deliver`, `ack_wait` well above a batch
  (long batches send `in_progress()`).
- On every attach (start, and after any failure) the consumer is deleted and recreated at the
  stream sequence after the checkpoint (`by_start_sequence`; `all` when there is none), so no
  stale redelivery can arrive behind newer messages. If the stream no longer holds the messages
  after the checkpoint (`max_age`), the read model is first caught up from the event store.
- One sequential loop: fetch (finite timeout; a timeout is an empty batch) → apply and commit →
  ack. Acks go out only after the commit; duplicates are acked too. A stream whose only subjects
  are the consumer's delivers consecutive sequences, so a hole (a message dropped after
  `max_deliver`) makes the loop re-attach at the checkpoint instead of skipping it.
- A store that lost data (a Redis restarted empty or from an older snapshot) answers a
  checkpoint behind one it acknowledged: the target raises CheckpointLost on the next batch, or
  on the idle check while no message comes. The loop then re-attaches at the checkpoint the
  store holds (`Target.rewind`): the read model is re-projected from there, exactly once in
  effect, since what the store kept is consistent (data and checkpoint together).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from eventlog.envelope import EventEnvelope
from eventlog.jetstream import ContextStream
from projections.engine import Engine, Outcome
from projections.model import CheckpointLost, Message, Projection
from projections.outages import log_reattaching
from readmodels.checkpoints import Checkpoint
from readmodels.partition_checkpoints import LeaseLost

logger = logging.getLogger("strata.projections.consumers")


@dataclass(frozen=True)
class ConsumerOptions:
    batch_size: int = 256
    fetch_timeout: float = 1.0
    ack_wait: float = 60.0
    max_deliver: int = 10
    pauses: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)
    """Waits before re-attaching after consecutive failures (the last one repeats)."""
    idle_check: float = 5.0
    """Seconds between reads of the checkpoint while no message comes, so that a store that
    lost data is noticed without waiting for the next event."""
    join_lag: int = 5_000
    """Positions a projection may trail its context's feed and still be fed by it; one further
    behind catches up on its own consumer first (projections.feed)."""


def consumer_name(projection: Projection, context: str) -> str:
    return f"proj_{projection.name}_v{projection.version}_{context}"


Backfill = Callable[[Engine, str], int]
"""Catch a read model up from the event store (blocking); returns the events read."""


class Consumer(Protocol):
    """What is observed of a projection's consumption (a runner, or a member of a feed)."""

    @property
    def engine(self) -> Engine: ...
    @property
    def context(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def attached(self) -> bool: ...
    @property
    def checkpoint(self) -> Checkpoint: ...
    @property
    def last_event_time(self) -> datetime | None: ...


BatchObserver = Callable[[Consumer, Outcome, float], None]


class SequenceGap(RuntimeError):
    """The consumer skipped stream sequences: re-attach at the checkpoint."""


class Reconnected(Exception):
    """The NATS connection was re-established since the consumer attached: re-attach, as a pull
    subscription may not recover from a server restart by itself (nats.py#504)."""


class ConsumerRunner:
    def __init__(
        self,
        js: JetStreamContext,
        engine: Engine,
        stream: ContextStream,
        options: ConsumerOptions | None = None,
        *,
        backfill: Backfill | None = None,
        observe: BatchObserver | None = None,
        reconnects: Callable[[], int] | None = None,
        filter_subject: str | None = None,
        name_suffix: str = "",
    ) -> None:
        """`filter_subject` (default: the whole stream) and `name_suffix`: a partition's
        consumer of a projector worker (`_pNN_eE`, projections.workers)."""
        self._js = js
        self.engine = engine
        self.stream = stream
        self.options = options or ConsumerOptions()
        self._backfill = backfill
        self._observe = observe
        self._reconnects = reconnects or (lambda: 0)
        self._attached_after = 0
        """The connection's reconnect count when the consumer attached."""
        self.name = consumer_name(engine.projection, stream.context) + name_suffix
        self._filter_subject = filter_subject
        self.attached = False
        self.checkpoint = Checkpoint()
        self.last_event_time: datetime | None = None
        self._next_seq = 1
        self._contiguous = False
        self._idle_check_at = 0.0

    @property
    def context(self) -> str:
        return self.stream.context

    async def run(
        self,
        stopping: asyncio.Event,
        *,
        rewind: bool = False,
        done: Callable[[], bool] | None = None,
    ) -> None:
        """Attach and consume until `stopping` is set (or, if given, `done()` is true after a
        batch: a feed takes over); re-attach after any failure. `rewind`: first accept the
        checkpoint the store holds (it lost data)."""
        failures = 0
        while not stopping.is_set():
            subscription: JetStreamContext.PullSubscription | None = None
            try:
                subscription = await self.attach(rewind=rewind)
                failures, rewind = 0, False
                while not stopping.is_set():
                    await self.step(subscription)
                    if done is not None and done():
                        return
                    if self._reconnects() != self._attached_after:
                        raise Reconnected
            except Reconnected:
                logger.info("consumer %s: NATS reconnected; re-attaching", self.name)
            except CheckpointLost as lost:
                self._report_lost(lost)
                rewind = True
            except LeaseLost:
                raise  # a worker's partition: a newer holder has it, stop
            except Exception as error:  # noqa: BLE001 - logged; re-attached after a pause
                pause = self.options.pauses[min(failures, len(self.options.pauses) - 1)]
                failures += 1
                log_reattaching(
                    logger,
                    error,
                    f"consumer {self.name}",
                    pause,
                    projection=self.engine.projection.label,
                    context=self.context,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), pause)
            finally:
                self.attached = False
                if subscription is not None:
                    with contextlib.suppress(Exception):
                        await subscription.unsubscribe()

    async def attach(
        self, *, start: int | None = None, rewind: bool = False
    ) -> JetStreamContext.PullSubscription:
        """(Re)create the durable consumer at the stream sequence after the checkpoint (or at
        `start`, to force a redelivery: what the checkpoint covers is skipped anyway). With
        `rewind`, after the checkpoint the store holds even if it lost some it acknowledged."""
        target = self.engine.target
        self._attached_after = self._reconnects()
        self.engine.reload(self.context)
        read = target.rewind if rewind else target.checkpoint
        checkpoint = await asyncio.to_thread(read, self.context)
        info = await self._js.stream_info(self.stream.name)
        first, last = info.state.first_seq, info.state.last_seq
        if start is None:
            start = checkpoint.stream_seq + 1 if checkpoint.stream_seq else 1
        if start > last + 1:
            logger.warning(
                "%s: checkpoint sequence %d is past the end of %s (%d): reading it all",
                self.name,
                checkpoint.stream_seq,
                self.stream.name,
                last,
            )
            start = 1
        if start < first:
            await self._catch_up_from_store(first)
            start = first
            checkpoint = await asyncio.to_thread(target.checkpoint, self.context)
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(self.stream.name, self.name)
        await self._js.add_consumer(self.stream.name, self._config(start))
        subscription = await self._js.pull_subscribe_bind(
            durable=self.name, stream=self.stream.name
        )
        self._next_seq = start
        self._contiguous = self._filter_subject is None and list(info.config.subjects or []) == [
            self.stream.subjects
        ]
        self.checkpoint = checkpoint
        self._idle_check_at = time.monotonic() + self.options.idle_check
        self.attached = True
        logger.info(
            "consumer %s attached at stream sequence %d (checkpoint %d)",
            self.name,
            start,
            checkpoint.position,
            extra={"projection": self.engine.projection.label, "context": self.context},
        )
        return subscription

    def _config(self, start: int) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.name,
            description=f"strata projector {self.engine.projection.label}, {self.context}",
            deliver_policy=DeliverPolicy.ALL if start <= 1 else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=None if start <= 1 else start,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.options.ack_wait,
            max_deliver=self.options.max_deliver,
            max_ack_pending=self.options.batch_size,
            filter_subject=self._filter_subject or self.stream.subjects,
        )

    async def _catch_up_from_store(self, first: int) -> None:
        if self._backfill is None:
            logger.error(
                "%s: the stream starts at sequence %d, after the checkpoint, and there is no event"
                " store to catch up from: events in between are missing from the read model",
                self.name,
                first,
            )
            return
        read = await asyncio.to_thread(self._backfill, self.engine, self.context)
        logger.warning(
            "%s: the stream starts after the checkpoint; caught up %d events from the event store",
            self.name,
            read,
        )

    def _report_lost(self, lost: CheckpointLost) -> None:
        logger.warning(
            "%s lost checkpoint for %s (%s): re-projecting from %d; it had acknowledged %d",
            lost.store,
            lost.label,
            lost.context,
            lost.found,
            lost.acknowledged,
            extra={"projection": lost.label, "context": lost.context, "position": lost.found},
        )

    async def step(self, subscription: JetStreamContext.PullSubscription) -> int:
        """Fetch one batch, apply and commit it, then ack it; then retry the parked events whose
        pause is over. The number of messages fetched."""
        try:
            fetched = await subscription.fetch(
                self.options.batch_size, timeout=self.options.fetch_timeout
            )
        except TimeoutError:
            fetched = []
        if fetched:
            await self._handle(fetched)
        elif time.monotonic() >= self._idle_check_at:
            # Raises CheckpointLost if the store went back behind what it acknowledged.
            await asyncio.to_thread(self.engine.target.checkpoint, self.context)
            self._idle_check_at = time.monotonic() + self.options.idle_check
        if self.engine.retries_due(self.context):
            await asyncio.to_thread(self.engine.retry_due, self.context)
        return len(fetched)

    async def _handle(self, fetched: Sequence[Msg]) -> None:
        messages, readable = await self._decode(fetched)
        started = time.monotonic()
        outcome = await self._apply(messages, readable)
        for msg in readable:
            await msg.ack()
        if outcome.checkpoint is not None:
            self.checkpoint = outcome.checkpoint
        if outcome.last_event_time is not None:
            self.last_event_time = outcome.last_event_time
        if self._observe is not None:
            self._observe(self, outcome, time.monotonic() - started)

    async def _decode(self, fetched: Sequence[Msg]) -> tuple[list[Message], list[Msg]]:
        messages, self._next_seq = await decode_batch(
            fetched, self.name, self._next_seq, contiguous=self._contiguous, term=True
        )
        seqs = {message.stream_seq for message in messages}
        return messages, [msg for msg in fetched if stream_sequence(msg) in seqs]

    async def _apply(self, messages: list[Message], fetched: Sequence[Msg]) -> Outcome:
        if not messages:
            return Outcome()
        return await run_reporting_progress(
            lambda: self.engine.handle(self.context, messages),
            fetched,
            self.options.ack_wait / 3,
        )


async def decode_batch(
    fetched: Sequence[Msg], name: str, next_seq: int, *, contiguous: bool, term: bool = False
) -> tuple[list[Message], int]:
    """The envelopes of a fetched batch and the stream sequence expected next. A message that
    is not an envelope is logged and left out (`term`: terminated; else the ack of a later one
    covers it). With `contiguous` (the consumer reads every subject of its stream), a skipped
    sequence raises SequenceGap."""
    messages: list[Message] = []
    for msg in fetched:
        seq = stream_sequence(msg)
        if contiguous and seq > next_seq:
            raise SequenceGap(f"{name}: expected sequence {next_seq}, got {seq}")
        next_seq = max(next_seq, seq + 1)
        try:
            envelope = EventEnvelope.from_json(msg.data)
        except (ValueError, TypeError, KeyError) as error:
            logger.error(
                "%s: stream sequence %d is not an event envelope (%s); left out",
                name,
                seq,
                error,
            )
            if term:
                await msg.term()
            continue
        messages.append(Message(envelope, seq))
    return messages, next_seq


_V1_TOKENS = 9
"""`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`;
replies of 11 tokens or more carry a domain and an account hash first (nats.aio.msg.Msg.Ack)."""
_V2_MIN_TOKENS = 11


def stream_sequence(msg: Msg) -> int:
    """`msg.metadata.sequence.stream`, read from the reply subject without building the whole
    metadata (its time and dataclasses cost more than decoding the envelope)."""
    tokens = (msg.reply or "").split(".")
    if tokens[:2] == ["$JS", "ACK"]:
        if len(tokens) == _V1_TOKENS:
            return int(tokens[5])
        if len(tokens) >= _V2_MIN_TOKENS:
            return int(tokens[Msg.Ack.StreamSeq])
    return msg.metadata.sequence.stream  # raises NotJSMessageError, as nats does


async def run_reporting_progress(
    work: Callable[[], Outcome], fetched: Sequence[Msg], every: float
) -> Outcome:
    """Run `work` in a thread; tell the server we are still at the batch while it runs."""
    task = asyncio.ensure_future(asyncio.to_thread(work))
    while True:
        done, _ = await asyncio.wait({task}, timeout=every)
        if done:
            return task.result()
        for msg in fetched:
            await msg.in_progress()
