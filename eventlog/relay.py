"""The relay: one event store's notification log, published to its context's JetStream stream
exactly once and in position order.

- **One active relay per store.** The relay holds a PostgreSQL session-level advisory lock on a
  connection of its own; without it, it is a hot standby that retries every half second. If that
  connection fails it stops publishing at once (the next read or wait fails) and competes for
  the lock again.
- **Never skips.** It reads pages of the log on that connection (`StoreSession.read_page`,
  the query of `select_envelopes`). Appends take the events table lock, so commit order is
  position order: no position at or below one already read can commit later. Holes left by
  rolled-back appends are permanent and need no waiting.
- **Exactly once, in order.** Each message carries ``Nats-Msg-Id: <context>-<position>`` (the
  stream drops a re-publish inside its duplicate window) and ``Nats-Expected-Last-Msg-Id`` of the
  message before it (the stream rejects a publish whose predecessor is missing, error 10070,
  instead of storing it out of order; this also fences off a relay that lost the lock). The
  first message after a resume expects the stream's last sequence instead
  (``Nats-Expected-Last-Sequence``, error 10071): a restarted server has forgotten the id of a
  last message older than its duplicate window, and would refuse every chained publish.
- **No stream answering is not a failure.** While publishes get no responders (the stream has
  no leader, as during an election) or no ack in time, the page is sent again with the same
  ids and expectations (`eventlog.relay_publish.PagePublisher`), after bounded pauses.
- **Resume point.** On start and after any failure it resumes after the stream's last message,
  which is what is really stored; only when the stream holds no message does it fall back to the
  ``<context>_relay_checkpoint`` table: the last acknowledged position, saved by the statement
  of the next page read (on the next commit, or by the poll, at the latest a second later).
- **Halts rather than skip or mix.** The stream's last message must be this store's event at
  its position (same aggregate and version). When it is another store's (a wrong database URL,
  a store restored from an older backup) or no relay wrote it, the relay publishes nothing,
  says why on /readyz, the log and ``strata_relay_halted``, and looks again every few seconds.
- **Wake-ups.** LISTEN on the recorder's NOTIFY channel, with a poll every second as backstop.
  A page short of full is the end of the log as it was read: the relay then waits for a commit.
"""

import asyncio
import logging
from dataclasses import dataclass

import nats.errors
import psycopg
from eventsourcing.persistence import PersistenceError
from nats.aio.client import Client as NatsClient

from contexts.settings import Settings
from eventlog.jetstream import (
    WRONG_LAST_MSG_ID,
    WRONG_LAST_SEQUENCE,
    ContextStream,
    PublishFailed,
    PublishWindow,
    last_message,
)
from eventlog.postgres_recorder import PostgresSideRecordRecorder
from eventlog.relay_metrics import RelayMetrics
from eventlog.relay_publish import (
    NoSafeResumePoint,
    PagePublisher,
    Tip,
    pause,
    require_same_event,
    tip_of,
)
from eventlog.relay_store import PageReader, StoreSession

log = logging.getLogger(__name__)

LAG_OBSERVE_INTERVAL = 1.0
"""Seconds between two `SELECT max(notification_id)` of the lag metric."""

FENCED = (WRONG_LAST_MSG_ID, WRONG_LAST_SEQUENCE)
"""The stream refused a publish whose predecessor is not its last message."""
NATS_ERRORS = (nats.errors.Error, TimeoutError, OSError)
"""What a NATS request raises while the server is unreachable or slow."""


@dataclass(frozen=True)
class RelayConfig:
    page_size: int = 500
    max_in_flight: int = 256
    ack_timeout: float = 5.0
    poll_interval: float = 1.0
    lock_retry_interval: float = 0.5
    retry_interval: float = 1.0
    retry_pauses: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)
    """Pauses before reconnecting after consecutive failed sessions (the last one repeats)."""
    publish_retry_pauses: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0)
    """Pauses before sending a page again while no stream answers (the last one repeats): a
    stream leader election takes about 5 s."""
    connect_timeout: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> "RelayConfig":
        return cls(
            page_size=settings.relay_page_size,
            max_in_flight=settings.relay_max_in_flight,
            ack_timeout=settings.relay_ack_timeout_seconds,
            connect_timeout=settings.db_connect_timeout,
        )


class Relay:
    def __init__(
        self,
        *,
        context: str,
        recorder: PostgresSideRecordRecorder,
        database_url: str,
        nc: NatsClient,
        stream: ContextStream,
        metrics: RelayMetrics,
        config: RelayConfig | None = None,
    ) -> None:
        self._context = context
        self._recorder = recorder
        self._database_url = database_url
        self._nc = nc
        self._js = nc.jetstream()
        self._stream = stream
        self._metrics = metrics
        self._config = config or RelayConfig()
        self._log_extra: dict[str, object] = {"context": context, "stream": stream.name}
        self._store_max = 0
        self._store_max_at: float | None = None
        self._relayed = 0
        """The last position the stream acknowledged (or held when the relay resumed)."""
        self.active = False
        self.halted: str | None = None
        """Why publishing is halted: the stream does not continue this event store."""

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set, as the active relay or as a hot standby."""
        window = PublishWindow(
            self._nc,
            max_in_flight=self._config.max_in_flight,
            ack_timeout=self._config.ack_timeout,
        )
        await window.open()
        publisher = PagePublisher(
            window,
            self._stream,
            self._metrics,
            retry_pauses=self._config.publish_retry_pauses,
            log_extra=self._log_extra,
        )
        failures = 0
        try:
            while not stop.is_set():
                try:
                    published = await self._session(stop, publisher)
                except NoSafeResumePoint as error:
                    published = False
                    self._halt(str(error))
                except Exception as error:  # an outage, whatever it raises: wait and retry
                    published = self.active
                    log.warning(
                        "the relay's session failed; not publishing: %s",
                        str(error).strip() or type(error).__name__,
                        extra=self._log_extra,
                        exc_info=not isinstance(error, psycopg.Error | PersistenceError),
                    )
                finally:
                    self._set_active(False)
                failures = 0 if published else failures + 1
                pauses = self._config.retry_pauses
                await pause(stop, pauses[min(failures, len(pauses) - 1)])
        finally:
            await window.close()
            log.info("relay stopped", extra=self._log_extra)

    def _halt(self, reason: str | None) -> None:
        """Halt publishing for `reason` (logged once), or resume it (None)."""
        if reason is not None and reason != self.halted:
            log.error("publishing halted: %s", reason, extra=self._log_extra)
        elif reason is None and self.halted is not None:
            log.info("the stream continues this event store again", extra=self._log_extra)
        self.halted = reason
        self._metrics.halted.set(0 if reason is None else 1)

    def _set_active(self, active: bool) -> None:
        self.active = active
        self._metrics.active.set(1 if active else 0)

    async def _session(self, stop: asyncio.Event, publisher: PagePublisher) -> bool:
        """Connect, win the lock, relay; True if it got as far as relaying."""
        async with await psycopg.AsyncConnection.connect(
            self._database_url,
            autocommit=True,
            connect_timeout=self._config.connect_timeout,
            application_name=f"strata-relay-{self._context}",
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        ) as conn:
            session = StoreSession(conn, self._recorder, self._context, self._stream)
            await session.keep_alive_both_ways()
            if not await session.try_lock():
                log.info("another relay holds the lock: standing by", extra=self._log_extra)
                while not await session.try_lock():
                    if await pause(stop, self._config.lock_retry_interval):
                        return False
            self._set_active(True)
            log.info("holding the relay lock: publishing", extra=self._log_extra)
            await session.prepare()
            await self._relay(session, publisher, stop)
            return True

    async def _relay(
        self, session: StoreSession, publisher: PagePublisher, stop: asyncio.Event
    ) -> None:
        reader = PageReader(session, self._config.page_size)
        try:
            await self._relay_pages(session, publisher, reader, stop)
        finally:
            reader.discard()
        await session.save_checkpoint()  # of the last page, when stopped

    async def _relay_pages(
        self,
        session: StoreSession,
        publisher: PagePublisher,
        reader: PageReader,
        stop: asyncio.Event,
    ) -> None:
        tip = await self._resume(session, stop)
        fenced_in_a_row = 0
        while tip is not None and not stop.is_set():
            try:
                tip = await self._step(session, publisher, reader, tip, stop)
                fenced_in_a_row = 0
            except (PublishFailed, PersistenceError, *NATS_ERRORS) as error:
                reader.discard()
                self._metrics.resyncs.inc()
                log.warning(
                    "publishing after position %d failed: %s; re-syncing from the stream",
                    tip.position,
                    error,
                    extra={**self._log_extra, "position": tip.position},
                )
                await publisher.abandon()
                fenced = isinstance(error, PublishFailed) and error.err_code in FENCED
                fenced_in_a_row = fenced_in_a_row + 1 if fenced else 0
                # fenced: the stream moved on without us; re-read it at once, but only once
                if fenced_in_a_row != 1 and await pause(stop, self._config.retry_interval):
                    return
                tip = await self._resume(session, stop)

    async def _resume(self, session: StoreSession, stop: asyncio.Event) -> Tip | None:
        """The resume point, read from the stream until it answers (None if stopped first)."""
        while not stop.is_set():
            try:
                message = await last_message(self._js, self._stream.name)
            except NATS_ERRORS as error:
                log.warning("cannot read the stream: %s", error, extra=self._log_extra)
                await self._observe_lag(session)
                await pause(stop, self._config.retry_interval)
                continue
            await session.save_checkpoint()
            checkpoint = await session.checkpoint()
            tip = tip_of(message) if message else Tip(checkpoint, None)
            if message:
                require_same_event(message, tip, await session.event_at(tip.position))
                session.checkpoint_later(tip.position)  # what the stream really holds
            self._halt(None)
            self._relayed = tip.position
            extra = {**self._log_extra, "position": tip.position, "checkpoint": checkpoint}
            source = "the stream" if message else "the checkpoint (the stream is empty)"
            log.info("resuming after position %d, from %s", tip.position, source, extra=extra)
            return tip
        return None

    async def _step(
        self,
        session: StoreSession,
        publisher: PagePublisher,
        reader: PageReader,
        tip: Tip,
        stop: asyncio.Event,
    ) -> Tip:
        """Publish the next page; at the end of the log (a page short of full: nothing more had
        committed when it was read) wait for a commit. The checkpoint of a published page is
        saved by the next read: at once, on the next commit, or by the poll after a second."""
        page = await reader.read(tip.position)
        if page:
            after = page[-1].position
            # A full page means a backlog: the next page is read while this one's acks come in.
            full = len(page) == reader.page_size
            read_ahead = (lambda: reader.read_ahead(after)) if full else None
            published = await publisher.publish(
                page, tip, stop, sent=read_ahead, waiting=lambda: self._observe_lag(session)
            )
            if published is None:  # stopped while the stream did not answer
                return tip
            tip = published
            self._relayed = tip.position
            session.checkpoint_later(tip.position)
        await self._observe_lag(session)
        if len(page) < reader.page_size:
            await session.wait_for_commit(self._config.poll_interval, stop)
        return tip

    async def _observe_lag(self, session: StoreSession) -> None:
        """Lag = the store's last position - the last position relayed; the store is asked at
        most about once per LAG_OBSERVE_INTERVAL (between asks, the last answer stands: the lag
        can only shrink). Observed after each page, and while the stream does not answer."""
        now = asyncio.get_running_loop().time()
        if self._store_max_at is None or now - self._store_max_at >= LAG_OBSERVE_INTERVAL:
            self._store_max = await session.max_position()
            self._store_max_at = now
        self._metrics.lag.set(max(0, self._store_max - self._relayed))
