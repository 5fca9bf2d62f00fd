"""NATS JetStream for the event stores: the connection, one stream per context, and a bounded
window of pipelined publishes.

Each context has one stream: name ``ES_<CONTEXT>``, subjects ``es.<context>.>`` (with
``STRATA_STREAM_NAMESPACE=ns``: ``NS_ES_<CONTEXT>`` and ``ns.es.<context>.>``), file storage,
limits retention, a finite ``max_age``, a duplicate window, and no way to delete, purge or roll up
messages. Production runs it with 3 replicas (``STRATA_STREAM_REPLICAS=3``): a PubAck does not
mean the message is on disk (the file store syncs every 2 minutes by default), so one replica can
lose acknowledged messages in a crash.
"""

import asyncio
import itertools
import json
import logging
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    PubAck,
    RawStreamMsg,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import APIError, BadRequestError, NotFoundError

from contexts.settings import Settings
from eventlog.envelope import EventEnvelope

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
STREAM_NAME_IN_USE = 10058
"""JetStream API error: a stream of this name exists with another configuration."""
WRONG_LAST_MSG_ID = 10070
"""JetStream API error: ``Nats-Expected-Last-Msg-Id`` is not the stream's last message id."""
WRONG_LAST_SEQUENCE = 10071
"""JetStream API error: ``Nats-Expected-Last-Sequence`` is not the stream's last sequence."""

NO_RESPONDERS = 503
"""Status of the reply to a publish that no stream received (nats-py's NoStreamResponseError)."""

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class ContextStream:
    """The names of one context's stream and subjects."""

    context: str
    namespace: str = ""

    @property
    def name(self) -> str:
        base = f"ES_{self.context.upper()}"
        return f"{self.namespace.upper()}_{base}" if self.namespace else base

    @property
    def subject_root(self) -> str:
        root = f"es.{self.context}"
        return f"{self.namespace}.{root}" if self.namespace else root

    @property
    def subjects(self) -> str:
        """The stream's one subject filter: every subject of the context."""
        return f"{self.subject_root}.>"

    def subject_of(self, envelope: EventEnvelope) -> str:
        """`es.<context>.<aggregate type>.<event type>.p<NN>`, behind the namespace if any."""
        return f"{self.namespace}.{envelope.subject}" if self.namespace else envelope.subject


def context_stream(context: str, settings: Settings) -> ContextStream:
    return ContextStream(context, settings.stream_namespace)


def nats_servers(settings: Settings) -> list[str]:
    return [url.strip() for url in settings.nats_url.split(",") if url.strip()]


async def connect(
    settings: Settings,
    *,
    name: str,
    timeout: float = 10.0,
    reconnected: Callable[[], None] | None = None,
) -> NatsClient:
    """Connect, giving up after `timeout` seconds; once connected, reconnect without end, and
    call `reconnected()` each time the connection is back.

    Until it connects, nats-py tries the servers every second; their errors are not logged (a
    caller that tries again logs one line per call). When no server answers in time, the last
    error is raised (an OSError or a `nats.errors.Error`), else a TimeoutError.
    """
    nc = NatsClient()
    connected = False
    last_error: Exception | None = None

    async def on_error(error: Exception) -> None:
        nonlocal last_error
        if not connected:
            last_error = error
            return
        log.warning("NATS error: %s", error, extra={"error": type(error).__name__})

    async def on_disconnected() -> None:
        if not nc.is_closed:  # closing on purpose is no news
            log.warning("disconnected from NATS; reconnecting")

    async def on_reconnected() -> None:
        log.info("reconnected to NATS")
        if reconnected is not None:
            reconnected()

    try:
        await asyncio.wait_for(
            nc.connect(
                servers=nats_servers(settings),
                name=name,
                connect_timeout=2,
                reconnect_time_wait=1,
                max_reconnect_attempts=-1,
                ping_interval=5,
                max_outstanding_pings=3,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
            ),
            timeout,
        )
    except Exception as error:
        with suppress(Exception):  # stop its tries
            await nc.close()
        if isinstance(error, TimeoutError):
            raise last_error or TimeoutError(f"no NATS server answered in {timeout:g} s") from None
        raise
    connected = True
    return nc


def stream_config(stream: ContextStream, settings: Settings) -> StreamConfig:
    return StreamConfig(
        name=stream.name,
        description=f"Events of the {stream.context} event store, published by strata-relay.",
        subjects=[stream.subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=settings.stream_max_age_days * SECONDS_PER_DAY,
        max_bytes=settings.stream_max_bytes,
        duplicate_window=settings.stream_duplicate_window_seconds,
        num_replicas=settings.stream_replicas,
        deny_delete=True,
        deny_purge=True,
        allow_rollup_hdrs=False,
    )


async def ensure_stream(js: JetStreamContext, context: str, settings: Settings) -> StreamInfo:
    """Create the context's stream, or bring an existing one to the settings (idempotent)."""
    config = stream_config(context_stream(context, settings), settings)
    try:
        return await js.add_stream(config)
    except BadRequestError as error:
        if error.err_code != STREAM_NAME_IN_USE:
            raise
    return await js.update_stream(config)


async def last_message(js: JetStreamContext, stream_name: str) -> RawStreamMsg | None:
    """The stream's last message, or None when it holds none (never written, or aged out)."""
    for _ in range(5):
        info = await js.stream_info(stream_name)
        if not info.state.messages:
            return None
        try:
            return await js.get_msg(stream_name, seq=info.state.last_seq)
        except NotFoundError:
            continue  # it aged out between the two requests: look again
    raise RuntimeError(f"the last message of stream {stream_name} keeps vanishing")


async def message_after(js: JetStreamContext, stream_name: str, seq: int) -> RawStreamMsg | None:
    """The stream's first message after sequence `seq` still held, or None when none follows."""
    wanted = seq + 1
    for _ in range(5):
        try:
            return await js.get_msg(stream_name, seq=wanted)
        except NotFoundError:
            state = (await js.stream_info(stream_name)).state
            if wanted > state.last_seq:
                return None
            wanted = max(wanted + 1, state.first_seq)  # aged out, or never stored (a gap)
    return None


class PublishFailed(Exception):
    """A publish was rejected or not acknowledged in time; the ones after it may be lost too.

    `unavailable` when no stream answered: no responders (the stream has no leader, as during
    an election after its leader died, or no stream listens on the subject) or no ack in time
    (the server is unreachable or slow). Whether the message was stored is then unknown, so a
    re-publish with the same ``Nats-Msg-Id`` is the way to find out.
    """

    def __init__(
        self,
        message_id: str,
        reason: str,
        err_code: int | None = None,
        *,
        unavailable: bool = False,
    ) -> None:
        super().__init__(f"publish of {message_id} failed: {reason}")
        self.message_id = message_id
        self.err_code = err_code
        self.unavailable = unavailable


@dataclass(frozen=True)
class _InFlight:
    message_id: str
    ack: "asyncio.Future[PubAck]"
    deadline: float


class PublishWindow:
    """Pipelined JetStream publishes, at most `max_in_flight` of them unacknowledged.

    Publishes leave in call order on one connection, so the server stores them in that order; a
    caller chains them with ``Nats-Expected-Last-Msg-Id`` to have any gap rejected. Acks come back
    on one inbox subscription. nats-py's own `publish_async` is not used: when the server answers
    with an API error (such as 10070, wrong last message id) it leaves the future pending forever
    and reports the error to the connection's error callback instead (nats-py 2.16).
    """

    def __init__(self, nc: NatsClient, *, max_in_flight: int, ack_timeout: float) -> None:
        self._nc = nc
        self._max_in_flight = max_in_flight
        self._ack_timeout = ack_timeout
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[PubAck]] = {}
        self._in_flight: deque[_InFlight] = deque()
        self._acks: list[PubAck] = []
        self._inbox = ""
        self._subscription: Subscription | None = None

    async def open(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._subscription = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_reply)

    async def close(self) -> None:
        await self.abandon()
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except nats.errors.Error as error:
                log.debug("could not unsubscribe the ack inbox: %s", error)
            self._subscription = None

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        """Send one message, first waiting for the oldest ack if the window is full.

        Raises PublishFailed if an earlier publish was rejected or not acknowledged in time.
        """
        while len(self._in_flight) >= self._max_in_flight:
            await self._settle_oldest()
        loop = asyncio.get_running_loop()
        token = str(next(self._tokens))
        ack: asyncio.Future[PubAck] = loop.create_future()
        self._waiting[token] = ack
        ack.add_done_callback(lambda _: self._waiting.pop(token, None))
        message_id = headers.get(MSG_ID, subject)
        self._in_flight.append(_InFlight(message_id, ack, loop.time() + self._ack_timeout))
        try:
            await self._nc.publish(
                subject, payload, reply=f"{self._inbox}.{token}", headers=headers
            )
        except nats.errors.Error as error:
            self._in_flight.pop()  # never sent: no ack will come
            ack.cancel()
            raise PublishFailed(message_id, str(error) or type(error).__name__) from error

    async def flush(self) -> list[PubAck]:
        """Wait for every outstanding ack, oldest first; return the acks since the last flush."""
        while self._in_flight:
            await self._settle_oldest()
        acks, self._acks = self._acks, []
        return acks

    async def abandon(self) -> None:
        """After a failure: let outstanding publishes settle until their deadline, then forget
        them. Whatever they did is read back from the stream afterwards."""
        if self._in_flight:
            remaining = self._in_flight[-1].deadline - asyncio.get_running_loop().time()
            await asyncio.wait([entry.ack for entry in self._in_flight], timeout=max(0, remaining))
        for entry in self._in_flight:
            if not entry.ack.done():
                entry.ack.cancel()
            elif not entry.ack.cancelled():
                entry.ack.exception()  # retrieved: nothing to report at garbage collection
        self._in_flight.clear()
        self._acks.clear()

    async def _settle_oldest(self) -> None:
        entry = self._in_flight[0]
        remaining = entry.deadline - asyncio.get_running_loop().time()
        try:
            if entry.ack.done():  # the usual case: no timer needed
                ack = entry.ack.result()
            else:
                ack = await asyncio.wait_for(entry.ack, timeout=max(0, remaining))
        except TimeoutError:
            raise PublishFailed(
                entry.message_id,
                f"no acknowledgement within {self._ack_timeout:g} s",
                unavailable=True,
            ) from None
        except APIError as error:
            raise PublishFailed(
                entry.message_id,
                error.description or str(error),
                error.err_code,
                unavailable=error.code == NO_RESPONDERS,
            ) from error
        finally:
            self._in_flight.popleft()
        self._acks.append(ack)

    async def _on_reply(self, msg: Msg) -> None:
        ack = self._waiting.get(msg.subject.rpartition(".")[2])
        if ack is None or ack.done():
            return
        outcome = _parse_ack(msg)
        if isinstance(outcome, PubAck):
            ack.set_result(outcome)
        else:
            ack.set_exception(outcome)


def _parse_ack(msg: Msg) -> PubAck | APIError:
    if msg.headers and msg.headers.get("Status") == str(NO_RESPONDERS):
        return APIError(
            code=NO_RESPONDERS,
            description="no stream answered: it has no leader, or none listens on the subject",
        )
    try:
        body = json.loads(msg.data)
    except ValueError:
        return APIError(description=f"unreadable acknowledgement {msg.data[:200]!r}")
    if "error" in body:
        error = body["error"]
        return APIError(
            code=error.get("code"),
            err_code=error.get("err_code"),
            description=error.get("description"),
        )
    return PubAck.from_response(body)
