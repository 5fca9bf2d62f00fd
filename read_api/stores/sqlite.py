"""The embedded read database `<data_dir>/read.sqlite`: a small pool of read-only connections.

The projector creates and writes the file; this side opens it read-write only so that WAL
readers can use the shared-memory index, and sets `query_only`. A missing file is an error
(`sqlite3.OperationalError`, answered with 503), never an empty new database.
"""

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from projections.values import utc_text
from read_api.stores.sql import Row

READ_DATABASE = "read.sqlite"


class SqliteDialect:
    def uuid_in(self, value: UUID) -> object:
        return str(value)

    def uuid_out(self, value: Any) -> UUID:
        return UUID(str(value))

    def time_in(self, value: datetime) -> object:
        return utc_text(value)  # the projector's fixed-width form: text order is time order

    def time_out(self, value: Any) -> datetime:
        parsed = datetime.fromisoformat(str(value))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

    def date_in(self, value: date) -> object:
        return value.isoformat()

    def date_out(self, value: Any) -> date:
        return date.fromisoformat(str(value))


class SqliteSession:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        row: Row | None = self._conn.execute(sql, params).fetchone()
        return row


class SqliteDatabase:
    dialect = SqliteDialect()

    def __init__(self, path: Path, *, busy_timeout: float) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode=rw"
        conn = sqlite3.connect(
            uri,
            uri=True,
            timeout=self._busy_timeout,
            isolation_level=None,  # transactions are explicit: BEGIN ... COMMIT per session
            check_same_thread=False,  # a connection moves between worker threads, one at a time
        )
        conn.execute("PRAGMA query_only = ON")
        return conn

    @contextmanager
    def session(self) -> Iterator[SqliteSession]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        conn = conn or self._connect()
        try:
            conn.execute("BEGIN")  # a deferred read transaction: one snapshot for the session
            try:
                yield SqliteSession(conn)
            finally:
                conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
