"""An intake (a replica, a tracked process) fed from its upstream's JetStream stream (the
upstream runs in another process).

Each process serving the follower runs its own feed on an ephemeral pull consumer, created at
the stream sequence after the intake's checkpoint; several feeds of one intake (uvicorn
workers, replicas of the service) are harmless, since the intake ignores what it already holds
(a tracked intake refuses a page another feed took in first; the feed then attaches again).
One sequential loop: fetch (a timeout is an empty batch) -> take in, in one transaction ->
ack. On any failure, and after NATS reconnects, the consumer is dropped and made again from
the checkpoint, so nothing behind it is skipped and nothing is taken in twice.

If the stream no longer holds the messages after the checkpoint (its `max_age`), the feed
starts at the stream's first message and says so in the log: a follower cannot read another
context's database, so the intake may miss what aged out.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from eventlog.envelope import EventEnvelope
from eventlog.jetstream import ContextStream
from eventlog.replicas import Intake

log = logging.getLogger("strata.replicas")

BATCH_SIZE = 256
FETCH_TIMEOUT = 1.0
ACK_WAIT = 60.0
INACTIVE_THRESHOLD = 30.0
"""Seconds without a fetch after which the server drops the consumer of a feed that died."""
PAUSES = (0.5, 1.0, 2.0, 5.0)
RECHECK = 0.25
"""Seconds between reads of the checkpoint while waiting (another process may advance it)."""

Connect = Callable[[], Awaitable[NatsClient]]


class StreamFeed:
    def __init__(
        self,
        follower: str,
        intake: Intake,
        stream: ContextStream,
        connect: Connect,
    ) -> None:
        self.follower = follower
        self.intake = intake
        self._stream = stream
        self._connect = connect
        self._position = 0
        self._advanced = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.attached = False
        self._failures = 0
        """Failures in a row, each pausing longer; an attachment ends the row."""

    def position(self) -> int:
        return self._position

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"feed-{self.upstream}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def reach(self, position: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            advanced = self._advanced
            checkpoint = await asyncio.to_thread(self.intake.checkpoint)
            self._note(checkpoint.position)
            remaining = deadline - loop.time()
            if checkpoint.position >= position or remaining <= 0:
                return checkpoint.position >= position
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(advanced.wait(), min(remaining, RECHECK))

    @property
    def upstream(self) -> str:
        return self.intake.upstream

    def _note(self, position: int) -> None:
        if position > self._position:
            self._position = position
            advanced, self._advanced = self._advanced, asyncio.Event()
            advanced.set()

    async def _run(self) -> None:
        nc: NatsClient | None = None
        try:
            while not self._stopping.is_set():
                try:
                    if nc is None:
                        nc = await self._connect()
                    await self._follow(nc)
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # noqa: BLE001 - logged; the feed outlives any failure
                    pause = PAUSES[min(self._failures, len(PAUSES) - 1)]
                    self._failures += 1
                    log.warning(
                        "%s: %s; again in %g s", self, str(error) or type(error).__name__, pause
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), pause)
                else:
                    self._failures = 0
        finally:  # `stop` cancels the task: the connection must close then too
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()

    async def _follow(self, nc: NatsClient) -> None:
        """Attach after the checkpoint and take messages in until NATS reconnects."""
        js = nc.jetstream()
        reconnects = nc.stats["reconnects"]
        subscription = await self._attach(js)
        try:
            while not self._stopping.is_set() and nc.stats["reconnects"] == reconnects:
                await self._step(subscription)
        finally:
            self.attached = False
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            with contextlib.suppress(Exception):
                info = await subscription.consumer_info()
                await js.delete_consumer(self._stream.name, info.name)

    async def _attach(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        checkpoint = await asyncio.to_thread(self.intake.checkpoint)
        self._note(checkpoint.position)
        info = await js.stream_info(self._stream.name)
        first, last = info.state.first_seq, info.state.last_seq
        start = checkpoint.stream_seq + 1
        if start > last + 1:
            log.warning("%s: the stream is behind the intake's checkpoint: reading it all", self)
            start = 1
        if start < first:
            log.error("%s: messages %d to %d aged out of the stream", self, start, first - 1)
            start = first
        subscription = await js.pull_subscribe(
            self._stream.subjects,
            stream=self._stream.name,
            config=ConsumerConfig(
                description=f"strata {self}",
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=max(start, 1),
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ACK_WAIT,
                max_ack_pending=BATCH_SIZE,
                inactive_threshold=INACTIVE_THRESHOLD,
            ),
        )
        self.attached = True
        self._failures = 0
        log.info("%s attached at stream sequence %d", self, start)
        return subscription

    async def _step(self, subscription: JetStreamContext.PullSubscription) -> None:
        try:
            fetched = await subscription.fetch(BATCH_SIZE, timeout=FETCH_TIMEOUT)
        except TimeoutError:
            return
        if not fetched:  # nats-py answers so, not with a timeout, when the server ends a pull (408)
            return
        envelopes: list[EventEnvelope] = []
        for msg in fetched:
            try:
                envelopes.append(EventEnvelope.from_json(msg.data))
            except (ValueError, TypeError, KeyError) as error:
                seq = msg.metadata.sequence.stream
                log.error("%s: stream sequence %d is not an event envelope (%s)", self, seq, error)
        last_seq = fetched[-1].metadata.sequence.stream
        checkpoint = await asyncio.to_thread(self.intake.take_in, envelopes, last_seq)
        for msg in fetched:
            await msg.ack()
        if checkpoint is not None:
            self._note(checkpoint.position)

    def __str__(self) -> str:
        return f"feed of {self.upstream} into {self.follower}"
