"""Identity's own database: PostgreSQL in the stack, a SQLite file in the embedded mode.

The queries are written once, with `%s` placeholders, and run on either engine through
`Database.transaction()`. The schema is created idempotently when the service starts
(`identity.store.IdentityStore.prepare`), in an exclusive transaction so replicas starting
together do not race.
"""

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from psycopg import Connection, InterfaceError, OperationalError

from eventlog.pool_recovery import recovering_pool
from runtime.sqlite_wal import use_wal

Row = tuple[Any, ...]
SQLITE_FILE = "identity.sqlite3"
EXCLUSIVE_LOCK = 0x1DE7171E  # an advisory-lock number of identity's own
DATABASE_OUTAGES: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
"""What PostgreSQL raises while it is unreachable (the pool's timeout among them)."""

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS identity_credentials (
        user_id TEXT PRIMARY KEY,
        email_key TEXT NOT NULL UNIQUE,
        email TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS identity_sign_ups (
        idempotency_key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        user_id TEXT NOT NULL,
        created_at BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS identity_clients (
        client_id TEXT PRIMARY KEY,
        secret_digest TEXT NOT NULL,
        role TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS identity_refresh_tokens (
        token_digest TEXT PRIMARY KEY,
        family_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        roles TEXT NOT NULL,
        scope TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        revoked_at BIGINT)""",
    """CREATE INDEX IF NOT EXISTS identity_refresh_tokens_family
        ON identity_refresh_tokens (family_id)""",
    """CREATE INDEX IF NOT EXISTS identity_refresh_tokens_subject
        ON identity_refresh_tokens (subject)""",
    """CREATE TABLE IF NOT EXISTS identity_sign_in_attempts (
        email_key TEXT PRIMARY KEY,
        attempts INTEGER NOT NULL,
        lockouts INTEGER NOT NULL,
        locked_until BIGINT NOT NULL,
        last_attempt_at BIGINT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS identity_sign_in_attempts_last
        ON identity_sign_in_attempts (last_attempt_at)""",
    """CREATE TABLE IF NOT EXISTS identity_followed_logs (
        upstream TEXT PRIMARY KEY,
        position BIGINT NOT NULL,
        stream_seq BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS identity_deactivated_users (
        user_id TEXT PRIMARY KEY,
        since BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS identity_signing_keys (
        kid TEXT PRIMARY KEY,
        private_pem TEXT NOT NULL,
        active_from BIGINT NOT NULL)""",
)


class Transaction(Protocol):
    def execute(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """Run one statement (`%s` placeholders) and return its rows (none for most writes)."""
        ...


class Database(Protocol):
    def open(self) -> None: ...

    def transaction(self, *, exclusive: bool = False) -> AbstractContextManager[Transaction]:
        """One transaction, committed when the block ends normally, else rolled back. An
        exclusive one runs alone among the exclusive ones (schema, first key, bootstrap)."""
        ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


class _PostgresTransaction:
    def __init__(self, connection: Connection[Row]) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        cursor = self._connection.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


class PostgresDatabase:
    def __init__(self, url: str, pool_size: int, connect_timeout: float) -> None:
        self._pool = recovering_pool(
            url, min_size=1, max_size=max(pool_size, 1), timeout=connect_timeout, open=False
        )

    def open(self) -> None:
        self._pool.open()

    @contextmanager
    def transaction(self, *, exclusive: bool = False) -> Iterator[Transaction]:
        with self._pool.connection() as connection, connection.transaction():
            tx = _PostgresTransaction(connection)
            if exclusive:
                tx.execute("SELECT pg_advisory_xact_lock(%s)", (EXCLUSIVE_LOCK,))
            yield tx

    def ping(self) -> None:
        with self.transaction() as tx:
            tx.execute("SELECT 1")

    def close(self) -> None:
        self._pool.close()


class _SqliteTransaction:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return self._connection.execute(sql.replace("%s", "?"), tuple(params)).fetchall()


class SqliteDatabase:
    """A connection per transaction, each one `BEGIN IMMEDIATE` (so each one is exclusive):
    writers queue, never deadlock."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self._path = path
        self._busy_timeout = busy_timeout

    def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self._path, timeout=self._busy_timeout) as connection:
            use_wal(connection, self._busy_timeout)

    @contextmanager
    def transaction(self, *, exclusive: bool = False) -> Iterator[Transaction]:
        connection = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def ping(self) -> None:
        with self.transaction() as tx:
            tx.execute("SELECT 1")

    def close(self) -> None:
        pass
