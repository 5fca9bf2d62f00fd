"""The PostgreSQL read database (stack mode): a pool of read-only, snapshot-isolated connections."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import IsolationLevel
from psycopg_pool import ConnectionPool

from read_api.stores.sql import Row


class PostgresDialect:
    """psycopg adapts UUIDs, dates and aware datetimes natively."""

    def uuid_in(self, value: UUID) -> object:
        return value

    def uuid_out(self, value: Any) -> UUID:
        return value if isinstance(value, UUID) else UUID(str(value))

    def time_in(self, value: datetime) -> object:
        return value

    def time_out(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.astimezone(UTC)

    def date_in(self, value: date) -> object:
        return value

    def date_out(self, value: Any) -> date:
        assert isinstance(value, date)
        return value


def _to_psycopg(sql: str) -> str:
    # The shared queries use `?` and contain no literal `%` or `?`.
    return sql.replace("?", "%s")


class PostgresSession:
    def __init__(self, conn: psycopg.Connection[Row]) -> None:
        self._conn = conn

    def all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return self._conn.execute(_to_psycopg(sql), params).fetchall()

    def one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        return self._conn.execute(_to_psycopg(sql), params).fetchone()


def _configure(conn: psycopg.Connection[Any]) -> None:
    # One snapshot per session: a checkpoint and the rows read after it agree.
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True


class PostgresDatabase:
    dialect = PostgresDialect()

    def __init__(self, url: str, *, min_size: int, max_size: int, timeout: float) -> None:
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            url,
            min_size=min(min_size, max_size),
            max_size=max_size,
            timeout=timeout,
            kwargs={"connect_timeout": max(1, round(timeout))},
            configure=_configure,
            check=self._check,
            open=False,
            name="read-models",
        )
        # Connections are made in the background: the API starts while the database is down.
        self._pool.open(wait=False)

    def _check(self, conn: psycopg.Connection[Row]) -> None:
        """Check a connection on checkout (one round trip), so that one the server dropped (a
        restart) is replaced instead of failing a read. A dropped one means the server most
        likely dropped them all: the pool checks every idle connection at once, rather than
        finding them out one checkout at a time, with growing pauses between."""
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.Error:
            self._pool.check()
            raise

    @contextmanager
    def session(self) -> Iterator[PostgresSession]:
        with self._pool.connection() as conn:
            yield PostgresSession(conn)  # committed (a read-only snapshot ends) on exit

    def close(self) -> None:
        self._pool.close()
