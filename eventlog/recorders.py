"""Event-store recorders that write side records in the transaction of the events.

Both recorders keep the library's insert path (PostgreSQL: the EXCLUSIVE table lock, so commit
order equals position order and no tailer can skip a late commit). Side records are:

- ``*_idempotency``: what a command with an Idempotency-Key produced;
- ``*_claims``: unique values (email addresses) held by one aggregate, enforced by a primary key;
- ``*_event_times``: the (aggregate id, event timestamp) -> version index for point-in-time replay.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.ports import IdempotencyRecord, SideRecords


class PostgresSideRecordRecorder(PostgresApplicationRecorder):
    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        prefix = events_table_name.removesuffix("_events")
        self._schema = Identifier(datastore.schema)
        self._idempotency = Identifier(f"{prefix}_idempotency")
        self._claims = Identifier(f"{prefix}_claims")
        self._event_times = Identifier(f"{prefix}_event_times")
        self._event_times_index = Identifier(f"{prefix}_event_times_by_time")
        self.sql_create_statements.extend(self._side_table_statements())
        # One round trip: the lock that makes commit order equal position order, then NOTIFY.
        self._lock_and_notify_statement = SQL("; ").join(
            [*self.lock_table_statements, SQL("NOTIFY {}").format(Identifier(self.channel_name))]
        )

    def _side_table_statements(self) -> list[Any]:
        names = {
            "schema": self._schema,
            "idempotency": self._idempotency,
            "claims": self._claims,
            "event_times": self._event_times,
            "event_times_index": self._event_times_index,
        }
        statements = [
            "CREATE TABLE IF NOT EXISTS {schema}.{idempotency} ("
            " key text PRIMARY KEY, fingerprint text NOT NULL,"
            " aggregate_id uuid NOT NULL, version bigint NOT NULL,"
            " recorded_at timestamptz NOT NULL DEFAULT now())",
            "CREATE TABLE IF NOT EXISTS {schema}.{claims} ("
            " scope text NOT NULL, value text NOT NULL, owner_id uuid NOT NULL,"
            " PRIMARY KEY (scope, value))",
            "CREATE TABLE IF NOT EXISTS {schema}.{event_times} ("
            " originator_id uuid NOT NULL, originator_version bigint NOT NULL,"
            " timestamp timestamptz NOT NULL,"
            " PRIMARY KEY (originator_id, originator_version))",
            "CREATE INDEX IF NOT EXISTS {event_times_index} ON {schema}.{event_times}"
            " (originator_id, timestamp) INCLUDE (originator_version)",
        ]
        return [SQL(statement).format(**names) for statement in statements]

    def insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        side_records: SideRecords | None = None,
        **_: Any,
    ) -> Sequence[int]:
        """Append events and side records in one transaction, returning the events' positions.

        Unlike the library's version this is not retried on connection errors: a command
        handler must learn of an outage at once, not after ten retries. Side records go
        first, so the table lock is held only for the events insert and the commit.
        """
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            if side_records is not None:
                self._insert_side_records(curs, side_records)
            if not stored_events:
                return []
            curs.execute(self._lock_and_notify_statement)
            self._insert_rows(curs, stored_events)
            return [row["notification_id"] for row in curs.fetchall()]

    def _insert_rows(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]) -> None:
        rows = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        curs.execute(self.insert_events_statement, (rows,), prepare=True)

    def _insert_side_records(self, curs: Cursor[DictRow], records: SideRecords) -> None:
        if records.released_claims:
            curs.executemany(
                SQL("DELETE FROM {}.{} WHERE scope = %s AND value = %s AND owner_id = %s").format(
                    self._schema, self._claims
                ),
                [(c.scope, c.value, c.owner_id) for c in records.released_claims],
            )
        if records.claims:
            curs.executemany(
                SQL("INSERT INTO {}.{} (scope, value, owner_id) VALUES (%s, %s, %s)").format(
                    self._schema, self._claims
                ),
                [(c.scope, c.value, c.owner_id) for c in records.claims],
            )
        if records.idempotency:
            curs.executemany(
                SQL(
                    "INSERT INTO {}.{} (key, fingerprint, aggregate_id, version)"
                    " VALUES (%s, %s, %s, %s)"
                ).format(self._schema, self._idempotency),
                [(r.key, r.fingerprint, r.aggregate_id, r.version) for r in records.idempotency],
            )
        if records.event_times:
            curs.executemany(
                SQL(
                    "INSERT INTO {}.{} (originator_id, originator_version, timestamp)"
                    " VALUES (%s, %s, %s)"
                ).format(self._schema, self._event_times),
                [(t.originator_id, t.originator_version, t.timestamp) for t in records.event_times],
            )

    def ping(self) -> None:
        """Raise if the database cannot be reached (no retries, unlike the library's reads)."""
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT 1")

    def _fetch_one(self, statement: Composed, params: Sequence[Any]) -> DictRow | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(statement, params, prepare=True)
            return curs.fetchone()

    def find_idempotency_record(self, key: str) -> IdempotencyRecord | None:
        row = self._fetch_one(
            SQL("SELECT fingerprint, aggregate_id, version FROM {}.{} WHERE key = %s").format(
                self._schema, self._idempotency
            ),
            [key],
        )
        if row is None:
            return None
        return IdempotencyRecord(key, row["fingerprint"], row["aggregate_id"], row["version"])

    def claim_owner(self, scope: str, value: str) -> UUID | None:
        row = self._fetch_one(
            SQL("SELECT owner_id FROM {}.{} WHERE scope = %s AND value = %s").format(
                self._schema, self._claims
            ),
            [scope, value],
        )
        return None if row is None else row["owner_id"]

    def position_of(self, originator_id: UUID, originator_version: int) -> int | None:
        row = self._fetch_one(
            SQL(
                "SELECT notification_id FROM {}.{}"
                " WHERE originator_id = %s AND originator_version = %s"
            ).format(self._schema, Identifier(self.events_table_name)),
            [originator_id, originator_version],
        )
        return None if row is None else row["notification_id"]

    def version_at(self, originator_id: UUID, timestamp: datetime) -> int | None:
        row = self._fetch_one(
            SQL(
                "SELECT originator_version FROM {}.{}"
                " WHERE originator_id = %s AND timestamp <= %s"
                " ORDER BY timestamp DESC LIMIT 1"
            ).format(self._schema, self._event_times),
            [originator_id, timestamp],
        )
        return None if row is None else row["originator_version"]


def _microseconds(timestamp: datetime) -> int:
    """SQLite has no timestamp type; integer microseconds since the epoch sort correctly."""
    delta = timestamp.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class SQLiteSideRecordRecorder(SQLiteApplicationRecorder):
    def __init__(
        self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS idempotency ("
            " key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
            " aggregate_id TEXT NOT NULL, version INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS claims ("
            " scope TEXT NOT NULL, value TEXT NOT NULL, owner_id TEXT NOT NULL,"
            " PRIMARY KEY (scope, value))",
            "CREATE TABLE IF NOT EXISTS event_times ("
            " originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL,"
            " timestamp_us INTEGER NOT NULL, PRIMARY KEY (originator_id, originator_version))",
            "CREATE INDEX IF NOT EXISTS event_times_by_time"
            " ON event_times (originator_id, timestamp_us, originator_version)",
        ]

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        side_records: SideRecords | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        if side_records is not None:
            self._insert_side_records(c, side_records)
        return super()._insert_events(c, stored_events, **kwargs)

    @staticmethod
    def _insert_side_records(c: SQLiteCursor, records: SideRecords) -> None:
        c.executemany(
            "DELETE FROM claims WHERE scope = ? AND value = ? AND owner_id = ?",
            [(r.scope, r.value, r.owner_id.hex) for r in records.released_claims],
        )
        c.executemany(
            "INSERT INTO claims (scope, value, owner_id) VALUES (?, ?, ?)",
            [(r.scope, r.value, r.owner_id.hex) for r in records.claims],
        )
        c.executemany(
            "INSERT INTO idempotency (key, fingerprint, aggregate_id, version) VALUES (?, ?, ?, ?)",
            [(r.key, r.fingerprint, r.aggregate_id.hex, r.version) for r in records.idempotency],
        )
        c.executemany(
            "INSERT INTO event_times (originator_id, originator_version, timestamp_us)"
            " VALUES (?, ?, ?)",
            [
                (t.originator_id.hex, t.originator_version, _microseconds(t.timestamp))
                for t in records.event_times
            ],
        )

    def ping(self) -> None:
        self._fetch_one("SELECT 1", [])

    def _fetch_one(self, statement: str, params: Sequence[Any]) -> Any:
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return c.fetchone()

    def find_idempotency_record(self, key: str) -> IdempotencyRecord | None:
        row = self._fetch_one(
            "SELECT fingerprint, aggregate_id, version FROM idempotency WHERE key = ?", [key]
        )
        if row is None:
            return None
        return IdempotencyRecord(key, row["fingerprint"], UUID(row["aggregate_id"]), row["version"])

    def claim_owner(self, scope: str, value: str) -> UUID | None:
        row = self._fetch_one(
            "SELECT owner_id FROM claims WHERE scope = ? AND value = ?", [scope, value]
        )
        return None if row is None else UUID(row["owner_id"])

    def position_of(self, originator_id: UUID, originator_version: int) -> int | None:
        row = self._fetch_one(
            f"SELECT rowid FROM {self.events_table_name}"  # noqa: S608 - table name is ours
            " WHERE originator_id = ? AND originator_version = ?",
            [originator_id.hex, originator_version],
        )
        return None if row is None else row[0]

    def version_at(self, originator_id: UUID, timestamp: datetime) -> int | None:
        row = self._fetch_one(
            "SELECT originator_version FROM event_times"
            " WHERE originator_id = ? AND timestamp_us <= ?"
            " ORDER BY timestamp_us DESC LIMIT 1",
            [originator_id.hex, _microseconds(timestamp)],
        )
        return None if row is None else row["originator_version"]
