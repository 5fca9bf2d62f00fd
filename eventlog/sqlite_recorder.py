"""The embedded default's event-store recorder: SQLite, with the side records of
`eventlog.postgres_recorder` (idempotency, claims, event metadata, jobs, tracking) written in
the transaction of the events, and the context's replicas of other contexts
(`eventlog.sqlite_replicas`). Timestamps are integer microseconds since the epoch (SQLite has
no timestamp).
"""

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from domain.ports import EventMetadata, IdempotencyRecord, SideRecords
from eventlog.envelope import EventEnvelope, envelope_from_row
from eventlog.jobs import RecorderJobs
from eventlog.log_pages import RecorderPages
from eventlog.replicas import RecorderReplicas
from eventlog.sqlite_jobs import CREATE_STATEMENTS as JOB_TABLES
from eventlog.sqlite_jobs import SQLiteJobs, instant, microseconds, write_jobs
from eventlog.sqlite_replicas import CREATE_STATEMENTS as REPLICA_TABLES
from eventlog.sqlite_replicas import SQLiteReplicas, move_tracked


class SQLiteSideRecordRecorder(
    RecorderPages, RecorderJobs, RecorderReplicas, SQLiteApplicationRecorder
):
    jobs: SQLiteJobs

    def __init__(
        self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name)
        self._replicas = SQLiteReplicas(datastore)
        self.jobs = SQLiteJobs(datastore)
        # A page of some kinds of events (`eventlog.log_pages.RecorderPages`): parameters
        # (after, limit, the kinds' topic names as a JSON array). The table name is ours.
        self._kinds_page = (
            "WITH scanned AS (SELECT rowid AS position, originator_id, originator_version,"  # noqa: S608
            f" topic, state FROM {events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?),"
            " span AS (SELECT max(position) AS reached, count(*) AS scanned FROM scanned)"
            " SELECT span.*, s.*, m.correlation_id, m.causation_id FROM span"
            " LEFT JOIN scanned s ON substr(s.topic, instr(s.topic, ':') + 1)"
            " IN (SELECT value FROM json_each(?))"
            " LEFT JOIN event_metadata m"
            " ON (m.originator_id, m.originator_version) = (s.originator_id, s.originator_version)"
            " ORDER BY s.position"
        )

    def create_table(self) -> None:
        super().create_table()
        self.jobs.upgrade()

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS idempotency ("
            " key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
            " aggregate_id TEXT NOT NULL, version INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS claims ("
            " scope TEXT NOT NULL, value TEXT NOT NULL, owner_id TEXT NOT NULL,"
            " PRIMARY KEY (scope, value))",
            "CREATE TABLE IF NOT EXISTS event_metadata ("
            " originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL,"
            " timestamp_us INTEGER NOT NULL, correlation_id TEXT, causation_id TEXT,"
            " PRIMARY KEY (originator_id, originator_version))",
            "CREATE INDEX IF NOT EXISTS event_metadata_by_time"
            " ON event_metadata (originator_id, timestamp_us, originator_version)",
            *REPLICA_TABLES,
            *JOB_TABLES,
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
            move_tracked(c, side_records.tracking)
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
            "INSERT INTO event_metadata (originator_id, originator_version, timestamp_us,"
            " correlation_id, causation_id) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    m.originator_id.hex,
                    m.originator_version,
                    microseconds(m.timestamp),
                    m.correlation_id,
                    m.causation_id,
                )
                for m in records.event_metadata
            ],
        )
        write_jobs(c, records.jobs, records.done_jobs)

    def select_envelopes(self, context: str, after: int, limit: int) -> list[EventEnvelope]:
        """The events after a position, in position order, with their metadata, as envelopes."""
        return self._select_envelopes(
            context, "e.rowid > ? ORDER BY e.rowid LIMIT ?", [after, limit]
        )

    def _kinds_rows(self, after: int, limit: int, names: list[str]) -> list[Any]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._kinds_page, [after, limit, json.dumps(names)])
            return list(c.fetchall())

    def select_aggregate_envelopes(
        self, context: str, originator_id: UUID, after_version: int, up_to_version: int
    ) -> list[EventEnvelope]:
        """One aggregate's events with versions in (after_version, up_to_version], in order."""
        return self._select_envelopes(
            context,
            "e.originator_id = ? AND e.originator_version > ?"
            " AND e.originator_version <= ? ORDER BY e.originator_version",
            [originator_id.hex, after_version, up_to_version],
        )

    def _select_envelopes(
        self, context: str, condition: str, params: Sequence[Any]
    ) -> list[EventEnvelope]:
        # The table name is ours; values are parameters.
        statement = (
            "SELECT e.rowid AS position, e.originator_id, e.originator_version,"  # noqa: S608
            " e.topic, e.state, m.correlation_id, m.causation_id"
            f" FROM {self.events_table_name} e"
            " LEFT JOIN event_metadata m USING (originator_id, originator_version)"
            f" WHERE {condition}"
        )
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return [envelope_from_row(context, row) for row in c.fetchall()]

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

    def claimed(self, scope: str) -> list[str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT value FROM claims WHERE scope = ? ORDER BY value", [scope])
            return [row["value"] for row in c.fetchall()]

    def position_of(self, originator_id: UUID, originator_version: int) -> int | None:
        row = self._fetch_one(
            f"SELECT rowid FROM {self.events_table_name}"  # noqa: S608 - table name is ours
            " WHERE originator_id = ? AND originator_version = ?",
            [originator_id.hex, originator_version],
        )
        return None if row is None else row[0]

    def metadata_of(self, originator_id: UUID, originator_version: int) -> EventMetadata | None:
        row = self._fetch_one(
            "SELECT timestamp_us, correlation_id, causation_id FROM event_metadata"
            " WHERE originator_id = ? AND originator_version = ?",
            [originator_id.hex, originator_version],
        )
        if row is None:
            return None
        timestamp = instant(row["timestamp_us"])
        return EventMetadata(
            originator_id, originator_version, timestamp, row["correlation_id"], row["causation_id"]
        )

    def version_at(self, originator_id: UUID, timestamp: datetime) -> int | None:
        row = self._fetch_one(
            "SELECT originator_version FROM event_metadata"
            " WHERE originator_id = ? AND timestamp_us <= ?"
            " ORDER BY timestamp_us DESC LIMIT 1",
            [originator_id.hex, microseconds(timestamp)],
        )
        return None if row is None else row["originator_version"]
