"""Event-store recorders that write side records in the transaction of the events.

Both recorders keep the library's insert path (PostgreSQL: the EXCLUSIVE table lock, so commit
order equals position order and no tailer can skip a late commit). Side records are:

- ``*_idempotency``: what a command with an Idempotency-Key produced;
- ``*_claims``: unique values (email addresses) held by one aggregate, enforced by a primary key;
- ``*_event_metadata``: each event's timestamp, indexed as (aggregate id, timestamp) -> version
  for point-in-time replay, and the correlation and causation ids of the command behind it;
- ``*_jobs``: work due at a time, run by pollers (`eventlog.jobs`, `eventlog.postgres_jobs`);
- in ``*_replica_checkpoints``: the positions of processes tracking an upstream's log
  (`SideRecords.tracking`), moved only from where the tracking says, else nothing is written.

Beside them are the tables of the context's replicas of other contexts (`eventlog.replicas`).

On PostgreSQL the library's snapshots table (``*_snapshots``) is created with them, under the same
advisory lock, so replicas starting together on a fresh database cannot collide creating it.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, LiteralString
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
)
from psycopg import Connection, Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.ports import EventMetadata, IdempotencyRecord, SideRecords
from eventlog.envelope import EventEnvelope, envelope_from_row
from eventlog.jobs import RecorderJobs
from eventlog.log_pages import RecorderPages
from eventlog.pool_recovery import recover_promptly
from eventlog.postgres_jobs import PostgresJobs
from eventlog.postgres_replicas import PostgresReplicas
from eventlog.replicas import RecorderReplicas

_PAGE_AFTER: Final = "e.notification_id > %s ORDER BY e.notification_id LIMIT %s"
"""The condition of a page of the log: parameters (after, limit)."""
_KINDS_PAGE: Final = (
    "WITH scanned AS (SELECT notification_id AS position, originator_id, originator_version,"
    " topic, state FROM {schema}.{events} WHERE notification_id > %s"
    " ORDER BY notification_id LIMIT %s),"
    " span AS (SELECT max(position) AS reached, count(*) AS scanned FROM scanned)"
    " SELECT span.*, s.*, m.correlation_id, m.causation_id FROM span"
    " LEFT JOIN scanned s ON substr(s.topic, strpos(s.topic, ':') + 1) = ANY(%s)"
    " LEFT JOIN {schema}.{metadata} m"
    " ON (m.originator_id, m.originator_version) = (s.originator_id, s.originator_version)"
    " ORDER BY s.position"
)
"""A page of some kinds of events (`eventlog.log_pages.RecorderPages`): parameters (after,
limit, the kinds' topic names)."""


def _columns(rows: Sequence[Any], *names: str) -> list[list[Any]]:
    """Rows of dataclasses to one list per column, for `unnest`."""
    return [[getattr(row, name) for row in rows] for name in names]


def _snapshots_table_statement(datastore: PostgresDatastore, prefix: str) -> Any:
    """The library's own DDL of the snapshots table (the snapshot store creates it too, but
    without our advisory lock, and `CREATE TABLE IF NOT EXISTS` is not safe under concurrency)."""
    snapshots = PostgresAggregateRecorder(datastore, events_table_name=f"{prefix}_snapshots")
    return snapshots.sql_create_statements[snapshots.create_table_statement_index]


class PostgresSideRecordRecorder(
    RecorderPages, RecorderJobs, RecorderReplicas, PostgresApplicationRecorder
):
    _replicas: PostgresReplicas

    jobs: PostgresJobs

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        recover_promptly(datastore.pool)
        prefix = events_table_name.removesuffix("_events")
        self._schema = Identifier(datastore.schema)
        self._idempotency = Identifier(f"{prefix}_idempotency")
        self._claims = Identifier(f"{prefix}_claims")
        self._event_metadata = Identifier(f"{prefix}_event_metadata")
        self._event_metadata_index = Identifier(f"{prefix}_event_metadata_by_time")
        self._replicas = PostgresReplicas(datastore, prefix)
        self.jobs = PostgresJobs(datastore, prefix)
        self._side_relations = [
            *(
                f"{prefix}_{suffix}"
                for suffix in (
                    "idempotency",
                    "claims",
                    "event_metadata",
                    "event_metadata_by_time",
                    "snapshots",
                )
            ),
            *self._replicas.relations,
            *self.jobs.relations,
        ]
        self.sql_create_statements.extend(self._side_table_statements())
        self.sql_create_statements.extend(self._replicas.create_statements)
        self.sql_create_statements.extend(self.jobs.create_statements)
        self.sql_create_statements.append(_snapshots_table_statement(datastore, prefix))
        self._insert_rows_statement = SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[])"
            " RETURNING notification_id"
        ).format(self._schema, Identifier(events_table_name))
        self._kinds_page = SQL(_KINDS_PAGE).format(
            schema=self._schema, events=Identifier(events_table_name), metadata=self._event_metadata
        )
        # The lock that makes commit order equal position order, then the wake-up for tailers.
        self._lock_and_notify_statements = [
            *self.lock_table_statements,
            SQL("NOTIFY {}").format(Identifier(self.channel_name)),
        ]

    def _side_table_statements(self) -> list[Any]:
        names = {
            "schema": self._schema,
            "idempotency": self._idempotency,
            "claims": self._claims,
            "event_metadata": self._event_metadata,
            "event_metadata_index": self._event_metadata_index,
        }
        statements = [
            "CREATE TABLE IF NOT EXISTS {schema}.{idempotency} ("
            " key text PRIMARY KEY, fingerprint text NOT NULL,"
            " aggregate_id uuid NOT NULL, version bigint NOT NULL,"
            " recorded_at timestamptz NOT NULL DEFAULT now())",
            "CREATE TABLE IF NOT EXISTS {schema}.{claims} ("
            " scope text NOT NULL, value text NOT NULL, owner_id uuid NOT NULL,"
            " PRIMARY KEY (scope, value))",
            "CREATE TABLE IF NOT EXISTS {schema}.{event_metadata} ("
            " originator_id uuid NOT NULL, originator_version bigint NOT NULL,"
            " timestamp timestamptz NOT NULL, correlation_id text, causation_id text,"
            " PRIMARY KEY (originator_id, originator_version))",
            "CREATE INDEX IF NOT EXISTS {event_metadata_index} ON {schema}.{event_metadata}"
            " (originator_id, timestamp) INCLUDE (originator_version)",
        ]
        return [SQL(statement).format(**names) for statement in statements]

    def create_table(self) -> None:
        """Create the tables once, even when several processes start at the same moment.

        `CREATE TABLE IF NOT EXISTS` is not safe under concurrency (two creators collide on the
        catalog's unique index), so creators queue on an advisory lock named after the table.
        Nor is it harmless when the tables exist: `CREATE INDEX IF NOT EXISTS` still takes a
        SHARE lock, which deadlocks with appends in flight, so existing tables are left alone.
        """
        with self.datastore.get_connection() as conn:
            key = f"strata-ddl-{self.events_table_name}"
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [key])
            try:
                if not self._all_relations_exist(conn):
                    super().create_table()
                self.jobs.upgrade(conn)
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])

    def _all_relations_exist(self, conn: Connection[DictRow]) -> bool:
        names = [
            self.events_table_name,
            self.notification_id_index_name,
            *self._side_relations,
        ]
        qualified = [f"{self.datastore.schema}.{name}" for name in names]
        row = conn.execute(
            "SELECT bool_and(to_regclass(name) IS NOT NULL) AS all_exist"
            " FROM unnest(%s::text[]) AS name",
            [qualified],
        ).fetchone()
        return bool(row and row["all_exist"])

    def insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        side_records: SideRecords | None = None,
        **_: Any,
    ) -> Sequence[int]:
        """Append events and side records in one transaction, returning the events' positions.

        Everything goes in one pipelined round trip. Unlike the library's version this is not
        retried on connection errors: a command handler must learn of an outage at once, not
        after ten retries. A tracking that finds its position moved raises TrackingConflict.
        """
        records = side_records or SideRecords()
        with (
            self.datastore.get_connection() as conn,
            conn.pipeline(),
            conn.transaction(),
            conn.cursor() as curs,
        ):
            # Tracking first: a second processor of a page queues on the row, not on the table;
            # by upstream, so that two commits tracking the same ones cannot deadlock.
            trackings = sorted(records.tracking, key=lambda tracking: tracking.upstream)
            tracked = self._replicas.track(conn, trackings)
            self._insert_side_records(curs, records)
            positions: list[int] = []
            if stored_events:
                for statement in self._lock_and_notify_statements:
                    curs.execute(statement)
                self._insert_rows(curs, stored_events)
                positions = [row["notification_id"] for row in curs.fetchall()]
            self._replicas.check_tracked(trackings, tracked)
            return positions

    def _insert_rows(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]) -> None:
        # Four plain arrays adapt several times faster than the library's composite-type array.
        curs.execute(
            self._insert_rows_statement,
            _columns(stored_events, "originator_id", "originator_version", "topic", "state"),
            prepare=True,
        )

    def _insert_side_records(self, curs: Cursor[DictRow], records: SideRecords) -> None:
        """One statement per kind of record, with arrays, whatever the number of rows."""
        if records.released_claims:
            curs.execute(
                SQL(
                    "DELETE FROM {}.{} WHERE (scope, value, owner_id) IN"
                    " (SELECT * FROM unnest(%s::text[], %s::text[], %s::uuid[]))"
                ).format(self._schema, self._claims),
                _columns(records.released_claims, "scope", "value", "owner_id"),
            )
        if records.claims:
            curs.execute(
                SQL(
                    "INSERT INTO {}.{} (scope, value, owner_id)"
                    " SELECT * FROM unnest(%s::text[], %s::text[], %s::uuid[])"
                ).format(self._schema, self._claims),
                _columns(records.claims, "scope", "value", "owner_id"),
            )
        if records.idempotency:
            curs.execute(
                SQL(
                    "INSERT INTO {}.{} (key, fingerprint, aggregate_id, version)"
                    " SELECT * FROM unnest(%s::text[], %s::text[], %s::uuid[], %s::bigint[])"
                ).format(self._schema, self._idempotency),
                _columns(records.idempotency, "key", "fingerprint", "aggregate_id", "version"),
            )
        if records.event_metadata:
            curs.execute(
                SQL(
                    "INSERT INTO {}.{} (originator_id, originator_version, timestamp,"
                    " correlation_id, causation_id) SELECT * FROM unnest(%s::uuid[],"
                    " %s::bigint[], %s::timestamptz[], %s::text[], %s::text[])"
                ).format(self._schema, self._event_metadata),
                _columns(
                    records.event_metadata,
                    "originator_id",
                    "originator_version",
                    "timestamp",
                    "correlation_id",
                    "causation_id",
                ),
            )
        self.jobs.write(curs, records.jobs, records.done_jobs)

    def select_envelopes(self, context: str, after: int, limit: int) -> list[EventEnvelope]:
        """The events after a position, in position order, with their metadata, as envelopes."""
        return self._select_envelopes(context, _PAGE_AFTER, [after, limit])

    def _kinds_rows(self, after: int, limit: int, names: list[str]) -> list[DictRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._kinds_page, [after, limit, names], prepare=True)
            return curs.fetchall()

    def select_aggregate_envelopes(
        self, context: str, originator_id: UUID, after_version: int, up_to_version: int
    ) -> list[EventEnvelope]:
        """One aggregate's events with versions in (after_version, up_to_version], in order."""
        return self._select_envelopes(
            context,
            "e.originator_id = %s AND e.originator_version > %s"
            " AND e.originator_version <= %s ORDER BY e.originator_version",
            [originator_id, after_version, up_to_version],
        )

    def envelope_page_statement(self) -> Composed:
        """`select_envelopes`'s statement, for a reader on a connection of its own: parameters
        (after, limit); each row is read by `envelope_from_row`."""
        return self._envelopes_statement(_PAGE_AFTER)

    def _envelopes_statement(self, condition: LiteralString) -> Composed:
        # `condition` is a literal of this class; values are parameters.
        return SQL(
            "SELECT e.notification_id AS position, e.originator_id, e.originator_version,"  # noqa: S608
            " e.topic, e.state, m.correlation_id, m.causation_id FROM {schema}.{events} e"
            " LEFT JOIN {schema}.{metadata} m USING (originator_id, originator_version)"
            " WHERE " + condition
        ).format(
            schema=self._schema,
            events=Identifier(self.events_table_name),
            metadata=self._event_metadata,
        )

    def _select_envelopes(
        self, context: str, condition: LiteralString, params: Sequence[Any]
    ) -> list[EventEnvelope]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._envelopes_statement(condition), params, prepare=True)
            return [envelope_from_row(context, row) for row in curs.fetchall()]

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

    def claimed(self, scope: str) -> list[str]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT value FROM {}.{} WHERE scope = %s ORDER BY value").format(
                    self._schema, self._claims
                ),
                [scope],
                prepare=True,
            )
            return [row["value"] for row in curs.fetchall()]

    def position_of(self, originator_id: UUID, originator_version: int) -> int | None:
        row = self._fetch_one(
            SQL(
                "SELECT notification_id FROM {}.{}"
                " WHERE originator_id = %s AND originator_version = %s"
            ).format(self._schema, Identifier(self.events_table_name)),
            [originator_id, originator_version],
        )
        return None if row is None else row["notification_id"]

    def metadata_of(self, originator_id: UUID, originator_version: int) -> EventMetadata | None:
        row = self._fetch_one(
            SQL(
                "SELECT timestamp, correlation_id, causation_id FROM {}.{}"
                " WHERE originator_id = %s AND originator_version = %s"
            ).format(self._schema, self._event_metadata),
            [originator_id, originator_version],
        )
        if row is None:
            return None
        return EventMetadata(
            originator_id,
            originator_version,
            row["timestamp"],
            row["correlation_id"],
            row["causation_id"],
        )

    def version_at(self, originator_id: UUID, timestamp: datetime) -> int | None:
        row = self._fetch_one(
            SQL(
                "SELECT originator_version FROM {}.{}"
                " WHERE originator_id = %s AND timestamp <= %s"
                " ORDER BY timestamp DESC LIMIT 1"
            ).format(self._schema, self._event_metadata),
            [originator_id, timestamp],
        )
        return None if row is None else row["originator_version"]
