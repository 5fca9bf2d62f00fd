"""The one SQL layer of the read databases: projectors write and the read API reads through it,
on psycopg (PostgreSQL) and sqlite3 alike.

Statements are written once with `?` placeholders and portable SQL (upserts with
`ON CONFLICT … DO UPDATE`, `RETURNING`); the dialect rewrites placeholders, adapts parameters
(UUIDs, times, dates, booleans) and names column types in DDL generated from :class:`Table`.
"""

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import IsolationLevel
from psycopg_pool import ConnectionPool

from eventlog.pool_recovery import recovering_pool
from readmodels.dialects import Dialect, PostgresDialect, SQLiteDialect
from runtime.sqlite_wal import use_wal

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # one of Dialect.types' keys
    nullable: bool = True


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    where: str | None = None
    prefix_search: bool = False  # PostgreSQL: text_pattern_ops, for LIKE 'abc%'


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[Index, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...


class Tx:
    """One transaction: statements with `?` placeholders, parameters adapted by the dialect."""

    pipelined = False
    """Statements are sent without waiting for their results (`PipelinedTx`)."""

    def __init__(self, dialect: Dialect, cursor: Any) -> None:
        self.dialect = dialect
        self._cursor: Any = cursor

    def execute(self, statement: str, params: Sequence[object] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        self._run(statement, params)
        return int(self._cursor.rowcount)

    def expect(
        self,
        statement: str,
        params: Sequence[object],
        rows: int,
        failure: Callable[[], Exception],
    ) -> None:
        """Run a statement that must change `rows` rows, else raise `failure()` (here at once;
        in a pipelined transaction when it is flushed)."""
        if self.execute(statement, params) != rows:
            raise failure()

    def flush(self) -> None:
        """Wait for the statements sent so far (a no-op unless pipelined)."""

    def query(self, statement: str, params: Sequence[object] = ()) -> list[Row]:
        self._run(statement, params)
        return [tuple(row) for row in self._cursor.fetchall()]

    def query_one(self, statement: str, params: Sequence[object] = ()) -> Row | None:
        self._run(statement, params)
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def copy_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]
    ) -> None:
        """Bulk insert: `COPY … FROM STDIN` on PostgreSQL, `executemany` on SQLite."""
        names = ", ".join(columns)
        if self.dialect.name == "postgresql":
            with self._cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(columns))
        self._cursor.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608 - our names
            ([self.dialect.adapt(value) for value in row] for row in rows),
        )

    def _run(self, statement: str, params: Sequence[object]) -> None:
        self._cursor.execute(
            self.dialect.sql(statement), [self.dialect.adapt(value) for value in params]
        )


class SqlDatabase(ABC):
    dialect: Dialect

    @abstractmethod
    def transaction(self, *, write: bool = True) -> AbstractContextManager[Tx]:
        """A transaction, committed when the block ends and rolled back if it raises."""

    @abstractmethod
    def close(self) -> None: ...

    def ping(self) -> None:
        with self.transaction(write=False) as tx:
            tx.query("SELECT 1")


class PostgresDatabase(SqlDatabase):
    """A PostgreSQL read database through a small connection pool, opened in the background
    (a database that is down fails the transactions, not the start).

    `read_only`: the read API's connections, each transaction one read-only snapshot
    (REPEATABLE READ), so a checkpoint and the rows read after it agree."""

    dialect = PostgresDialect()

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 4,
        min_size: int = 1,
        timeout: float = 5.0,
        read_only: bool = False,
    ) -> None:
        self._pool: ConnectionPool[psycopg.Connection[Row]] = recovering_pool(
            url,
            min_size=min(min_size, pool_size),
            max_size=pool_size,
            timeout=timeout,
            kwargs={"connect_timeout": max(1, round(timeout))},
            configure=_read_only_snapshots if read_only else None,
            open=False,
            name="read-models",
        )
        self._pool.open(wait=False)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            yield Tx(self.dialect, cursor)

    def connection(self) -> AbstractContextManager[psycopg.Connection[Row]]:
        """A connection of the pool, for a caller that drives it itself (pipelines)."""
        return self._pool.connection()

    def close(self) -> None:
        self._pool.close()


def _read_only_snapshots(conn: psycopg.Connection[Any]) -> None:
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True


READ_DATABASE = "read.sqlite"
"""The embedded mode's read database, in the data folder."""


class SQLiteDatabase(SqlDatabase):
    """A SQLite read database file: one connection per thread, WAL journal, writers take the
    write lock when they begin (no lock upgrade deadlocks)."""

    dialect = SQLiteDialect()

    def __init__(self, path: Path, *, busy_timeout: float = 10.0, read_only: bool = False) -> None:
        """`read_only`: the read API's connections: the file must exist (a missing one is an
        error, never an empty new database) and nothing is written (`query_only`)."""
        self.path = path
        self._busy_timeout = busy_timeout
        self._read_only = read_only
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> sqlite3.Connection:
        if self._read_only:
            # Opened read-write so that WAL readers can use the shared-memory index.
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=rw",
                uri=True,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA query_only = ON")
            return conn
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        use_wal(conn, self._busy_timeout)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        """A transaction; inside one this thread already holds, a savepoint of it (so a
        rebuild's swap can catch up and verify inside the transaction that holds the lock)."""
        conn = self._connection()
        if conn.in_transaction:
            conn.execute("SAVEPOINT nested")
            try:
                yield Tx(self.dialect, conn.cursor())
            except BaseException:
                conn.execute("ROLLBACK TO nested")
                conn.execute("RELEASE nested")
                raise
            conn.execute("RELEASE nested")
            return
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield Tx(self.dialect, conn.cursor())
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
