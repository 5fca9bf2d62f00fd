"""The relay's side of its event store: its own session (the relay lock, LISTEN for commits, the
pages of the log, the checkpoint) and the reader of pages ahead (see :mod:`eventlog.relay`).

Everything runs on that one connection, in the event loop: no pool, no thread hand-off, no
transaction around a read, and the checkpoint of the last acknowledged page rides along with
the next read (one statement), so an event at a low rate costs one round trip to PostgreSQL
besides its wake-up.
"""

import asyncio
import hashlib
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.sql import SQL, Composed, Identifier, Literal

from eventlog.envelope import EventEnvelope, envelope_from_row
from eventlog.jetstream import ContextStream
from eventlog.postgres_recorder import PostgresSideRecordRecorder

SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": Literal(5),
    "tcp_keepalives_interval": Literal(2),
    "tcp_keepalives_count": Literal(3),
    "tcp_user_timeout": Literal(10_000),
}
"""The server side of the lock connection's keepalives (seconds; milliseconds for the last)."""


def lock_key(stream: ContextStream) -> int:
    """The advisory lock of a stream's relay: a stable signed 64-bit hash of its name."""
    digest = hashlib.blake2b(f"strata-relay:{stream.name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class StoreSession:
    """The relay's own connection to its event store (not from the library's pool): it holds
    the relay lock, listens for commits, reads the log and keeps the checkpoint."""

    def __init__(
        self,
        conn: psycopg.AsyncConnection[Any],
        recorder: PostgresSideRecordRecorder,
        context: str,
        stream: ContextStream,
    ) -> None:
        self._conn = conn
        self._context = context
        self._unsaved: int | None = None
        self._channel = Identifier(recorder.channel_name)
        self._key = lock_key(stream)
        self._stream_name = stream.name
        schema = Identifier(recorder.datastore.schema)
        events = Identifier(recorder.events_table_name)
        checkpoints = Identifier(f"{context}_relay_checkpoint")
        self._create_checkpoints = SQL(
            "CREATE TABLE IF NOT EXISTS {}.{} (stream text PRIMARY KEY,"
            " position bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
        ).format(schema, checkpoints)
        self._select_checkpoint = SQL("SELECT position FROM {}.{} WHERE stream = %s").format(
            schema, checkpoints
        )
        self._upsert_checkpoint = SQL(
            "INSERT INTO {}.{} (stream, position) VALUES (%s, %s) ON CONFLICT (stream)"
            " DO UPDATE SET position = excluded.position, updated_at = now()"
        ).format(schema, checkpoints)
        self._max_position = SQL("SELECT max(notification_id) FROM {}.{}").format(schema, events)
        self._page = recorder.envelope_page_statement()
        self._saved_and_page: Composed = SQL("WITH saved AS ({}) {}").format(
            self._upsert_checkpoint, self._page
        )

    async def keep_alive_both_ways(self) -> None:
        """Have the server notice a vanished relay within seconds too (the operating system's
        default is two hours), so that its lock passes to the standby after a network split."""
        for setting, value in SERVER_KEEPALIVES.items():
            await self._conn.execute(SQL("SET {} = {}").format(Identifier(setting), value))

    async def try_lock(self) -> bool:
        cursor = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", [self._key])
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def prepare(self) -> None:
        await self._conn.execute(self._create_checkpoints)
        await self._conn.execute(SQL("LISTEN {}").format(self._channel))

    async def checkpoint(self) -> int:
        cursor = await self._conn.execute(self._select_checkpoint, [self._stream_name])
        row = await cursor.fetchone()
        return int(row[0]) if row else 0

    def checkpoint_later(self, position: int) -> None:
        """Save `position` (acknowledged by the stream) as the checkpoint with the next read,
        which follows at once, or `save_checkpoint()`."""
        self._unsaved = position

    async def save_checkpoint(self) -> None:
        """Save the checkpoint left for later now, if any."""
        if self._unsaved is not None:
            await self._conn.execute(self._upsert_checkpoint, [self._stream_name, self._unsaved])
            self._unsaved = None

    async def read_page(self, after: int, limit: int) -> list[EventEnvelope]:
        """The events after a position, in position order, as envelopes (one statement, which
        also saves the checkpoint left for later)."""
        saving, self._unsaved = self._unsaved, None
        async with self._conn.cursor(row_factory=dict_row) as cursor:
            if saving is None:
                await cursor.execute(self._page, [after, limit], prepare=True)
            else:
                parameters = [self._stream_name, saving, after, limit]
                await cursor.execute(self._saved_and_page, parameters, prepare=True)
            rows = await cursor.fetchall()
        return [envelope_from_row(self._context, row) for row in rows]

    async def event_at(self, position: int) -> EventEnvelope | None:
        page = await self.read_page(position - 1, 1)
        return page[0] if page and page[0].position == position else None

    async def max_position(self) -> int:
        cursor = await self._conn.execute(self._max_position)
        row = await cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def wait_for_commit(self, timeout: float, stop: asyncio.Event) -> None:
        """Return on the first NOTIFY of an append, after `timeout` seconds, or on `stop`."""
        notified = asyncio.ensure_future(self._notified(timeout))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({notified, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            notified.cancel()  # only when stopping: the connection is closed next
            stopping.cancel()
        if notified.done() and not notified.cancelled():
            notified.result()  # raises if the connection failed

    async def _notified(self, timeout: float) -> None:
        async for _ in self._conn.notifies(timeout=timeout, stop_after=1):
            pass
        async for _ in self._conn.notifies(timeout=0):
            pass  # the ones that arrived together: one read covers them all


class PageReader:
    """Reads pages of the log on the session. While a full page is being acknowledged, the page
    after it is already read (a page read early is still complete: under the table lock,
    anything that commits later has a higher position)."""

    def __init__(self, session: StoreSession, page_size: int) -> None:
        self._session = session
        self.page_size = page_size
        self._ahead: tuple[int, asyncio.Task[list[EventEnvelope]]] | None = None

    async def read(self, after: int) -> list[EventEnvelope]:
        if self._ahead is not None and self._ahead[0] == after:
            page, self._ahead = self._ahead[1], None
            return await page
        self.discard()
        return await self._session.read_page(after, self.page_size)

    def read_ahead(self, after: int) -> None:
        self.discard()
        self._ahead = (after, asyncio.create_task(self._session.read_page(after, self.page_size)))

    def discard(self) -> None:
        """Forget the page read ahead. Its read is left to finish, not cancelled: cancelling a
        query midway can leave the connection unusable."""
        if self._ahead is not None:
            page, self._ahead = self._ahead[1], None
            page.add_done_callback(lambda done: done.cancelled() or done.exception())
