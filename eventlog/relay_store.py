"""The relay's side of its event store: its own session (the relay lock, LISTEN for commits, the
checkpoint) and the reader of pages of envelopes (see :mod:`eventlog.relay`)."""

import asyncio
import hashlib
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier, Literal

from eventlog.envelope import EventEnvelope
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
    the relay lock, listens for commits and keeps the checkpoint."""

    def __init__(
        self,
        conn: psycopg.AsyncConnection[Any],
        recorder: PostgresSideRecordRecorder,
        context: str,
        stream: ContextStream,
    ) -> None:
        self._conn = conn
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

    async def save_checkpoint(self, position: int) -> None:
        await self._conn.execute(self._upsert_checkpoint, [self._stream_name, position])

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
    """Reads pages of envelopes in a worker thread. While a full page is being acknowledged,
    the page after it is already read (a page read early is still complete: under the table
    lock, anything that commits later has a higher position)."""

    def __init__(self, recorder: PostgresSideRecordRecorder, context: str, page_size: int) -> None:
        self._recorder = recorder
        self._context = context
        self.page_size = page_size
        self._ahead: tuple[int, asyncio.Future[list[EventEnvelope]]] | None = None

    async def read(self, after: int) -> list[EventEnvelope]:
        if self._ahead is not None and self._ahead[0] == after:
            page, self._ahead = self._ahead[1], None
            return await page
        self.discard()
        return await asyncio.to_thread(self._select, after)

    def read_ahead(self, after: int) -> None:
        self.discard()
        self._ahead = (after, asyncio.ensure_future(asyncio.to_thread(self._select, after)))

    def discard(self) -> None:
        if self._ahead is not None:
            page, self._ahead = self._ahead[1], None
            page.add_done_callback(lambda done: done.cancelled() or done.exception())
            page.cancel()

    def _select(self, after: int) -> list[EventEnvelope]:
        return self._recorder.select_envelopes(self._context, after, self.page_size)
