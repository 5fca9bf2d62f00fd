"""The one SQL layer of the read databases: projectors write and the read API reads through it,
on psycopg (PostgreSQL) and sqlite3 alike.

Statements are written once with `?` placeholders and portable SQL (upserts with
`ON CONFLICT … DO UPDATE`, `RETURNING`); the dialect rewrites placeholders, adapts parameters
(UUIDs, times, dates, booleans) and names column types in DDL generated from :class:`Table`.
"""

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol
from uuid import UUID

import psycopg
from psycopg import IsolationLevel
from psycopg_pool import ConnectionPool

from readmodels.formats import utc_text
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


class Dialect(ABC):
    name: ClassVar[str]
    placeholder: ClassVar[str]
    types: ClassVar[Mapping[str, str]]
    for_update: ClassVar[str]

    def sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    @abstractmethod
    def adapt(self, value: object) -> object:
        """A parameter as this driver takes it."""

    @abstractmethod
    def is_infrastructure_error(self, error: BaseException) -> bool:
        """True for a failure of the database (connection, lock, deadlock), which says nothing
        about the event being applied; False for an error the statement itself caused."""

    def create_table(self, table: Table) -> list[str]:
        columns = [
            f"{c.name} {self.types[c.type]}{'' if c.nullable else ' NOT NULL'}"
            for c in table.columns
        ]
        if table.primary_key:
            columns.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
        columns += [f"UNIQUE ({', '.join(unique)})" for unique in table.unique]
        statements = [f"CREATE TABLE IF NOT EXISTS {table.name} ({', '.join(columns)})"]
        for index in table.indexes:
            names = [f"{name}{self._pattern_ops(index)}" for name in index.columns]
            where = f" WHERE {index.where}" if index.where else ""
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {index.name} ON {table.name}"
                f" ({', '.join(names)}){where}"
            )
        return statements

    def _pattern_ops(self, index: Index) -> str:
        return ""

    def schema_lock(self, tx: "Tx") -> None:  # noqa: B027 - a no-op unless the dialect needs it
        """Serialise schema creation across processes."""

    def notify(self, tx: "Tx", channel: str, payload: str) -> None:  # noqa: B027 - optional
        """Send a notification on commit, if the database has them."""


class PostgresDialect(Dialect):
    name = "postgresql"
    placeholder = "%s"
    types: ClassVar[Mapping[str, str]] = {
        "uuid": "uuid",
        "text": "text",
        "int": "integer",
        "bigint": "bigint",
        "bool": "boolean",
        "timestamptz": "timestamptz",
        "date": "date",
        "json": "json",
        "serial": "bigserial",
    }
    for_update = " FOR UPDATE"

    def adapt(self, value: object) -> object:
        return value

    def is_infrastructure_error(self, error: BaseException) -> bool:
        return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)

    def _pattern_ops(self, index: Index) -> str:
        return " text_pattern_ops" if index.prefix_search else ""

    def schema_lock(self, tx: "Tx") -> None:
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('strata read models schema'))")

    def notify(self, tx: "Tx", channel: str, payload: str) -> None:
        tx.query("SELECT pg_notify(?, ?)", [channel, payload])


class SQLiteDialect(Dialect):
    name = "sqlite"
    placeholder = "?"
    types: ClassVar[Mapping[str, str]] = {
        "uuid": "TEXT",
        "text": "TEXT",
        "int": "INTEGER",
        "bigint": "INTEGER",
        "bool": "INTEGER",
        "timestamptz": "TEXT",
        "date": "TEXT",
        "json": "TEXT",
        "serial": "INTEGER",
    }
    for_update = ""  # BEGIN IMMEDIATE already holds the database's write lock

    _INFRASTRUCTURE = ("locked", "busy", "disk", "unable to open", "readonly")

    def adapt(self, value: object) -> object:
        if isinstance(value, UUID):
            return str(value)
        if isinstance(value, datetime):
            return utc_text(value)
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, bool):
            return int(value)
        return value

    def is_infrastructure_error(self, error: BaseException) -> bool:
        if not isinstance(error, sqlite3.OperationalError):
            return False
        text = str(error).lower()
        return any(word in text for word in self._INFRASTRUCTURE)


class Tx:
    """One transaction: statements with `?` placeholders, parameters adapted by the dialect."""

    def __init__(self, dialect: Dialect, cursor: Any) -> None:
        self.dialect = dialect
        self._cursor: Any = cursor

    def execute(self, statement: str, params: Sequence[object] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        self._run(statement, params)
        return int(self._cursor.rowcount)

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
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            url,
            min_size=min(min_size, pool_size),
            max_size=pool_size,
            timeout=timeout,
            kwargs={"connect_timeout": max(1, round(timeout))},
            configure=_read_only_snapshots if read_only else None,
            check=self._check,
            open=False,
            name="read-models",
        )
        self._pool.open(wait=False)

    def _check(self, conn: psycopg.Connection[Row]) -> None:
        """Check a connection on checkout (one round trip), so that one the server dropped (a
        restart) is replaced instead of failing the transaction that draws it. A dropped one
        means the server most likely dropped them all: the pool checks every idle connection
        at once, rather than finding them out one checkout at a time, with growing pauses."""
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.Error:
            self._pool.check()
            raise

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            yield Tx(self.dialect, cursor)

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
