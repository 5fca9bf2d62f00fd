"""The jobs of `eventlog.jobs` in a PostgreSQL event store's database.

``*_jobs``: (kind, key) -> when it is due, its JSON payload, how often it was claimed, when
and why it was parked (`eventlog.parked_jobs`; null while it is not) and its fence, with an
index by (kind, due time) of the jobs not parked. Jobs are written and deleted in the
transaction of the events (`SideRecords.jobs`, `SideRecords.done_jobs`); pollers claim due
ones with ``FOR UPDATE SKIP LOCKED``, so concurrent pollers pass each other's rows by instead
of waiting or sharing them.

The fence is a ``bigserial``: every insert, replacement, claim and retry of a job takes the
next value of the table's sequence, so a claim's fence is held by no other claim, ever, and a
poller's conditional writes (`reschedule_job`, `drop_job`, `park_job`, `extend_leases`) match
only while nothing happened to the job since its claim; the attempts can restart at 0.

A table made by an earlier version gets the missing columns and the partial index when the
store opens (`upgrade`), and loses the index that held the parked rows too.
"""

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from eventsourcing.postgres import PostgresDatastore
from psycopg import Connection, Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.ports import Job, JobKey
from eventlog.parked_jobs import ParkedJob

ADDED_COLUMNS = {"parked_at": "timestamptz", "parked_reason": "text", "fence": "bigserial"}
"""The columns a table made by an earlier version may lack, with their types."""


def _job(row: DictRow) -> Job:
    return Job(
        row["kind"],
        row["key"],
        row["due_at"].astimezone(UTC),
        row["payload"],
        row["attempts"],
        row["fence"],
    )


def _parked(row: DictRow) -> ParkedJob:
    return ParkedJob(
        row["kind"],
        row["key"],
        row["attempts"],
        row["parked_at"].astimezone(UTC),
        row["parked_reason"],
        row["payload"],
    )


class PostgresJobs:
    def __init__(self, datastore: PostgresDatastore, prefix: str) -> None:
        self._datastore = datastore
        self.relations = (f"{prefix}_jobs",)
        """Made with the tables; the index is made by `upgrade` (it needs columns an earlier
        version's table may lack)."""
        self._index_names = (f"{prefix}_jobs_unparked_by_due", f"{prefix}_jobs_by_due")
        names = {
            "schema": Identifier(datastore.schema),
            "jobs": Identifier(self.relations[0]),
            "index": Identifier(self._index_names[0]),
            "old_index": Identifier(self._index_names[1]),
        }
        statements = {
            "create": "CREATE TABLE IF NOT EXISTS {schema}.{jobs} (kind text NOT NULL,"
            " key text NOT NULL, due_at timestamptz NOT NULL, payload jsonb NOT NULL,"
            " attempts integer NOT NULL, parked_at timestamptz, parked_reason text,"
            " fence bigserial, PRIMARY KEY (kind, key))",
            # Claims and next_due say `parked_at IS NULL`, which implies the index's predicate.
            "create_index": "CREATE INDEX IF NOT EXISTS {index} ON {schema}.{jobs} (kind, due_at)"
            " WHERE parked_at IS NULL",
            "drop_old_index": "DROP INDEX IF EXISTS {schema}.{old_index}",
            "insert": "INSERT INTO {schema}.{jobs} AS j (kind, key, due_at, payload, attempts)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::jsonb[],"
            " %s::integer[]) ON CONFLICT (kind, key) DO UPDATE SET due_at = excluded.due_at,"
            " payload = excluded.payload, attempts = excluded.attempts,"
            " parked_at = NULL, parked_reason = NULL, fence = excluded.fence",
            "delete": "DELETE FROM {schema}.{jobs} WHERE (kind, key) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[]))",
            # The claimed rows are locked by the CTE; the job is handed out with its own due time.
            "claim": "WITH due AS (SELECT kind, key, due_at FROM {schema}.{jobs}"
            " WHERE kind = %(kind)s AND due_at <= %(now)s AND parked_at IS NULL"
            " ORDER BY due_at LIMIT %(limit)s"
            " FOR UPDATE SKIP LOCKED) UPDATE {schema}.{jobs} j"
            " SET due_at = %(now)s + %(lease)s, attempts = j.attempts + 1, fence = DEFAULT"
            " FROM due WHERE j.kind = due.kind AND j.key = due.key"
            " RETURNING j.kind, j.key, due.due_at, j.payload, j.attempts, j.fence",
            "reschedule": "UPDATE {schema}.{jobs} SET due_at = %s"
            " WHERE kind = %s AND key = %s AND fence = %s",
            "drop": "DELETE FROM {schema}.{jobs} WHERE kind = %s AND key = %s",
            "drop_claimed": "DELETE FROM {schema}.{jobs}"
            " WHERE kind = %s AND key = %s AND fence = %s",
            "next_due": "SELECT min(due_at) AS due_at FROM {schema}.{jobs}"
            " WHERE kind = %s AND parked_at IS NULL",
            "extend": "UPDATE {schema}.{jobs} j SET due_at = %s"
            " FROM unnest(%s::text[], %s::bigint[]) AS held(key, fence)"
            " WHERE j.kind = %s AND j.key = held.key AND j.fence = held.fence",
            "park": "UPDATE {schema}.{jobs} SET parked_at = %s, parked_reason = %s"
            " WHERE kind = %s AND key = %s AND fence = %s AND parked_at IS NULL RETURNING key",
            "parked": "SELECT kind, key, attempts, parked_at, parked_reason, payload"
            " FROM {schema}.{jobs} WHERE parked_at IS NOT NULL"
            " AND (%(kind)s::text IS NULL OR kind = %(kind)s)"
            " ORDER BY parked_at, kind, key LIMIT %(limit)s",
            "retry": "UPDATE {schema}.{jobs} SET parked_at = NULL, parked_reason = NULL,"
            " attempts = 0, due_at = %(now)s, fence = DEFAULT"
            " WHERE parked_at IS NOT NULL AND kind = %(kind)s"
            " AND (%(key)s::text IS NULL OR key = %(key)s) RETURNING key",
            "counts": "SELECT kind, count(*) AS parked FROM {schema}.{jobs}"
            " WHERE parked_at IS NOT NULL GROUP BY kind",
        }
        self._sql = {name: SQL(text).format(**names) for name, text in statements.items()}
        self.create_statements: list[Composed] = [self._sql["create"]]
        self._names = names
        self._qualified = [
            f"{datastore.schema}.{name}" for name in (*self.relations, *self._index_names)
        ]

    def upgrade(self, conn: Connection[DictRow]) -> None:
        """Bring the table to this version's layout: add the columns it lacks, make the index
        of the jobs not parked and drop the one of every job. Only what is missing: ALTER
        TABLE and DROP INDEX take the table's strongest lock, CREATE INDEX one that stops
        writes, even with nothing to do. The caller holds the store's DDL advisory lock."""
        found = conn.execute(
            "SELECT array(SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass(%s)"
            " AND NOT attisdropped) AS columns, to_regclass(%s) IS NOT NULL AS index,"
            " to_regclass(%s) IS NOT NULL AS old_index",
            self._qualified,
        ).fetchone()
        assert found is not None  # a SELECT without FROM returns one row
        missing = [column for column in ADDED_COLUMNS if column not in found["columns"]]
        if missing:
            conn.execute(self._add_columns(missing))
        if not found["index"]:
            conn.execute(self._sql["create_index"])
        if found["old_index"]:
            conn.execute(self._sql["drop_old_index"])

    def _add_columns(self, columns: Sequence[str]) -> Composed:
        added = SQL(", ").join(
            SQL("ADD COLUMN {} {}").format(Identifier(column), SQL(ADDED_COLUMNS[column]))
            for column in columns
        )
        return SQL("ALTER TABLE {}.{} {}").format(self._names["schema"], self._names["jobs"], added)

    def statement(self, name: str) -> Composed:
        """A statement by name (``claim``, ``next_due``, ...), to EXPLAIN it."""
        return self._sql[name]

    def write(self, curs: Cursor[DictRow], jobs: Sequence[Job], done: Sequence[JobKey]) -> None:
        """In the caller's transaction: delete the done jobs, then write the others."""
        if done:
            curs.execute(self._sql["delete"], [[kind for kind, _ in done], [k for _, k in done]])
        # One row per key: a statement may not update the same row twice.
        latest = list({(job.kind, job.key): job for job in jobs}.values())
        if latest:
            curs.execute(
                self._sql["insert"],
                [
                    [job.kind for job in latest],
                    [job.key for job in latest],
                    [job.due_at for job in latest],
                    [json.dumps(job.payload) for job in latest],
                    [job.attempts for job in latest],
                ],
            )

    def claim_due_jobs(self, kind: str, now: datetime, limit: int, lease: timedelta) -> list[Job]:
        params = {"kind": kind, "now": now, "limit": limit, "lease": lease}
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(self._sql["claim"], params, prepare=True)
            rows = curs.fetchall()
        return sorted((_job(row) for row in rows), key=lambda job: job.due_at)

    def reschedule_job(self, kind: str, key: str, due_at: datetime, fence: int) -> None:
        self._execute(self._sql["reschedule"], [due_at, kind, key, fence])

    def drop_job(self, kind: str, key: str, fence: int | None = None) -> None:
        if fence is None:
            self._execute(self._sql["drop"], [kind, key])
        else:
            self._execute(self._sql["drop_claimed"], [kind, key, fence])

    def next_due(self, kind: str) -> datetime | None:
        with self._datastore.transaction(commit=False) as curs:
            row = curs.execute(self._sql["next_due"], [kind], prepare=True).fetchone()
        due_at = None if row is None else row["due_at"]
        return None if due_at is None else due_at.astimezone(UTC)

    def extend_leases(self, kind: str, claims: Mapping[str, int], until: datetime) -> None:
        self._execute(self._sql["extend"], [until, list(claims), list(claims.values()), kind])

    def park_job(self, kind: str, key: str, fence: int, reason: str, at: datetime) -> bool:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(self._sql["park"], [at, reason, kind, key, fence])
            return curs.fetchone() is not None

    def parked_jobs(self, kind: str | None = None, limit: int = 100) -> list[ParkedJob]:
        with self._datastore.transaction(commit=False) as curs:
            rows = curs.execute(self._sql["parked"], {"kind": kind, "limit": limit}).fetchall()
        return [_parked(row) for row in rows]

    def retry_parked_jobs(self, kind: str, key: str | None, now: datetime) -> list[str]:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(self._sql["retry"], {"kind": kind, "key": key, "now": now})
            return sorted(row["key"] for row in curs.fetchall())

    def parked_job_counts(self) -> dict[str, int]:
        with self._datastore.transaction(commit=False) as curs:
            rows = curs.execute(self._sql["counts"]).fetchall()
        return {row["kind"]: row["parked"] for row in rows}

    def _execute(self, statement: Composed, params: Sequence[object]) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(statement, params, prepare=True)
