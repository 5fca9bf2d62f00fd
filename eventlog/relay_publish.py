"""What the relay writes to its context's stream and how: each event's message headers, the tip
publishing resumes after, and the publishing of a page, sent again with the same message ids
while no stream answers (see :mod:`eventlog.relay`)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from nats.js.api import PubAck, RawStreamMsg

from eventlog.envelope import EventEnvelope
from eventlog.jetstream import MSG_ID, ContextStream, PublishFailed, PublishWindow
from eventlog.relay_metrics import RelayMetrics

log = logging.getLogger(__name__)

EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"
EXPECTED_STREAM = "Nats-Expected-Stream"
POSITION = "Strata-Position"
AGGREGATE_TYPE = "Strata-Aggregate-Type"
AGGREGATE_ID = "Strata-Aggregate-Id"
AGGREGATE_VERSION = "Strata-Aggregate-Version"
EVENT_TYPE = "Strata-Event-Type"
SCHEMA_VERSION = "Strata-Schema-Version"
CORRELATION_ID = "Strata-Correlation-Id"
CAUSATION_ID = "Strata-Causation-Id"


def relay_headers(
    envelope: EventEnvelope,
    stream_name: str,
    previous_message_id: str | None,
    *,
    previous_seq: int | None = None,
) -> dict[str, str]:
    """The headers of one event's message, expecting the stream's last message to be the one
    before it: by its stream sequence when known (`previous_seq`), else by its id. No custom
    header ends in ``Nats-Msg-Id``: old servers matched that header by suffix
    (nats-server#3645)."""
    headers = {
        MSG_ID: envelope.message_id,
        EXPECTED_STREAM: stream_name,
        POSITION: str(envelope.position),
        AGGREGATE_TYPE: envelope.aggregate_type,
        AGGREGATE_ID: str(envelope.aggregate_id),
        AGGREGATE_VERSION: str(envelope.aggregate_version),
        EVENT_TYPE: envelope.event_type,
        SCHEMA_VERSION: str(envelope.schema_version),
    }
    if previous_seq is not None:
        headers[EXPECTED_LAST_SEQUENCE] = str(previous_seq)
    elif previous_message_id is not None:
        headers[EXPECTED_LAST_MSG_ID] = previous_message_id
    for name, value in (
        (CORRELATION_ID, envelope.correlation_id),
        (CAUSATION_ID, envelope.causation_id),
    ):
        if value and value.isascii() and value.isprintable():  # else only in the body
            headers[name] = value
    return headers


@dataclass(frozen=True)
class Tip:
    """Where publishing resumes: the last position relayed and its message id (None when the
    stream holds no message, so the next publish carries no expectation)."""

    position: int
    message_id: str | None
    stream_seq: int | None = None
    """The message's stream sequence, when the tip was read from the stream: the message after
    it then expects that sequence rather than the id. A server keeps its last sequence across a
    restart, but forgets the last message id once that message is older than the duplicate
    window, and then refuses every publish expecting an id (10070, with an empty last id)."""


class NoSafeResumePoint(Exception):
    """The stream's last message does not continue this event store: publishing after it would
    skip or mix events, so the relay halts until a person resolves it."""


class ForeignMessage(NoSafeResumePoint):
    """The stream's last message was not written by a relay."""


class StreamOfAnotherStore(NoSafeResumePoint):
    """The stream's last message is not this event store's event at its position."""


def tip_of(message: RawStreamMsg) -> Tip:
    headers = message.headers or {}
    position, message_id = headers.get(POSITION), headers.get(MSG_ID)
    if position is None or message_id is None or not str(position).isdigit():
        raise ForeignMessage(
            f"message {message.seq} on {message.subject} has no {POSITION} and {MSG_ID} headers"
        )
    return Tip(int(position), str(message_id), message.seq)


def require_same_event(message: RawStreamMsg, tip: Tip, stored: EventEnvelope | None) -> None:
    """Raise `StreamOfAnotherStore` unless `stored`, this store's event at the tip's position, is
    the event of the stream's last `message`."""
    headers = message.headers or {}
    published = (headers.get(AGGREGATE_ID), headers.get(AGGREGATE_VERSION))
    held = None if stored is None else (str(stored.aggregate_id), str(stored.aggregate_version))
    if published == held:
        return
    what = "no event" if held is None else f"aggregate {held[0]} version {held[1]}"
    raise StreamOfAnotherStore(
        f"the stream's last message is position {tip.position} (aggregate {published[0]} version"
        f" {published[1]}), where this event store holds {what}: the stream follows another"
        " store (a wrong database URL, or a store restored from an older backup)"
    )


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True if `stop` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


class PagePublisher:
    """Publishes pages of envelopes through one window, each message chained to the one before
    it (``Nats-Expected-Last-Msg-Id``; the first after a resume, ``Nats-Expected-Last-Sequence``).

    When no stream answers (no responders: the stream has no leader, as for the few seconds of
    an election after its leader died, which nats-py does not retry; or no ack in time) it
    pauses, then sends the whole page again with the same ids and expectations, until a stream
    answers or `stop` is set. A message an earlier attempt stored comes back as a duplicate; a
    message whose predecessor was not stored is rejected (10070), never stored out of order.
    Every other failure is raised.
    """

    def __init__(
        self,
        window: PublishWindow,
        stream: ContextStream,
        metrics: RelayMetrics,
        *,
        retry_pauses: Sequence[float],
        log_extra: dict[str, object],
    ) -> None:
        self._window = window
        self._stream = stream
        self._metrics = metrics
        self._retry_pauses = tuple(retry_pauses)
        self._log_extra = log_extra

    async def publish(
        self,
        page: Sequence[EventEnvelope],
        tip: Tip,
        stop: asyncio.Event,
        sent: Callable[[], None] | None = None,
        waiting: Callable[[], Awaitable[None]] | None = None,
    ) -> Tip | None:
        """Publish `page`, which follows `tip`, and wait for its acks; call `sent()` each time
        the page is on its way, and await `waiting()` before each pause while no stream
        answers. The tip of its last message, or None if `stop` was set while waiting to send
        it again."""
        attempt, first_failure = 0, 0.0
        while True:
            try:
                acks = await self._send(page, tip, sent)
            except PublishFailed as error:
                if not error.unavailable:
                    raise
                await self._window.abandon()
                if waiting is not None:
                    await waiting()
                now = asyncio.get_running_loop().time()
                first_failure = first_failure or now
                if await self._before_retry(error, attempt, now - first_failure, stop):
                    return None
                attempt += 1
                continue
            self._count(acks, page[-1], attempt)
            return Tip(page[-1].position, page[-1].message_id)

    async def _send(
        self, page: Sequence[EventEnvelope], tip: Tip, sent: Callable[[], None] | None
    ) -> list[PubAck]:
        previous, previous_seq = tip.message_id, tip.stream_seq
        for envelope in page:
            headers = relay_headers(
                envelope, self._stream.name, previous, previous_seq=previous_seq
            )
            await self._window.publish(
                self._stream.subject_of(envelope), envelope.to_json(), headers
            )
            previous, previous_seq = envelope.message_id, None
        if sent is not None:
            sent()
        return await self._window.flush()

    async def abandon(self) -> None:
        """After a failure: forget the publishes in flight (see `PublishWindow.abandon`)."""
        await self._window.abandon()

    async def _before_retry(
        self, error: PublishFailed, attempt: int, failing_for: float, stop: asyncio.Event
    ) -> bool:
        """Count, log and pause before the next attempt; True if `stop` was set meanwhile."""
        seconds = self._retry_pauses[min(attempt, len(self._retry_pauses) - 1)]
        self._metrics.publish_retries.inc()
        log.warning(
            "%s; sending the page again with the same message ids in %g s"
            " (retry %d, failing for %.1f s)",
            error,
            seconds,
            attempt + 1,
            failing_for,
            extra={**self._log_extra, "message_id": error.message_id, "retry": attempt + 1},
        )
        return await pause(stop, seconds)

    def _count(self, acks: list[PubAck], last: EventEnvelope, retries: int) -> None:
        stored = sum(1 for ack in acks if not ack.duplicate)
        self._metrics.relayed.inc(stored)
        self._metrics.duplicates.inc(len(acks) - stored)
        self._metrics.last_publish.set_to_current_time()
        extra = {
            **self._log_extra,
            "position": last.position,
            "correlation_id": last.correlation_id,
        }
        if retries:
            log.info("the stream answered again after %d retries", retries, extra=extra)
        log.debug("relayed %d events up to position %d", len(acks), last.position, extra=extra)
