"""The jobs of `eventlog.jobs` in a PostgreSQL event store's database.

``*_jobs``: (kind, key) -> when it is due, its JSON payload and how often it was claimed, with
an index by (kind, due time). Jobs are written and deleted in the transaction of the events
(`SideRecords.jobs`, `SideRecords.done_jobs`); pollers claim due ones with ``FOR UPDATE SKIP
LOCKED``, so concurrent pollers pass each other's rows by instead of waiting or sharing them.
"""

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.ports import Job, JobKey


def _job(row: DictRow) -> Job:
    return Job(
        row["kind"], row["key"], row["due_at"].astimezone(UTC), row["payload"], row["attempts"]
    )


class PostgresJobs:
    def __init__(self, datastore: PostgresDatastore, prefix: str) -> None:
        self._datastore = datastore
        self.relations = (f"{prefix}_jobs", f"{prefix}_jobs_by_due")
        names = {
            "schema": Identifier(datastore.schema),
            "jobs": Identifier(self.relations[0]),
            "index": Identifier(self.relations[1]),
        }
        statements = {
            "create": "CREATE TABLE IF NOT EXISTS {schema}.{jobs} (kind text NOT NULL,"
            " key text NOT NULL, due_at timestamptz NOT NULL, payload jsonb NOT NULL,"
            " attempts integer NOT NULL, PRIMARY KEY (kind, key))",
            "create_index": "CREATE INDEX IF NOT EXISTS {index} ON {schema}.{jobs} (kind, due_at)",
            "insert": "INSERT INTO {schema}.{jobs} AS j (kind, key, due_at, payload, attempts)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::jsonb[],"
            " %s::integer[]) ON CONFLICT (kind, key) DO UPDATE SET due_at = excluded.due_at,"
            " payload = excluded.payload, attempts = excluded.attempts",
            "delete": "DELETE FROM {schema}.{jobs} WHERE (kind, key) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[]))",
            # The claimed rows are locked by the CTE; the job is handed out with its own due time.
            "claim": "WITH due AS (SELECT kind, key, due_at FROM {schema}.{jobs}"
            " WHERE kind = %(kind)s AND due_at <= %(now)s ORDER BY due_at LIMIT %(limit)s"
            " FOR UPDATE SKIP LOCKED) UPDATE {schema}.{jobs} j"
            " SET due_at = %(now)s + %(lease)s, attempts = j.attempts + 1 FROM due"
            " WHERE j.kind = due.kind AND j.key = due.key"
            " RETURNING j.kind, j.key, due.due_at, j.payload, j.attempts",
            "reschedule": "UPDATE {schema}.{jobs} SET due_at = %s"
            " WHERE kind = %s AND key = %s AND attempts = %s",
            "drop": "DELETE FROM {schema}.{jobs} WHERE kind = %s AND key = %s",
            "drop_attempt": "DELETE FROM {schema}.{jobs}"
            " WHERE kind = %s AND key = %s AND attempts = %s",
            "next_due": "SELECT min(due_at) AS due_at FROM {schema}.{jobs} WHERE kind = %s",
            "extend": "UPDATE {schema}.{jobs} j SET due_at = %s"
            " FROM unnest(%s::text[], %s::integer[]) AS held(key, attempts)"
            " WHERE j.kind = %s AND j.key = held.key AND j.attempts = held.attempts",
        }
        self._sql = {name: SQL(text).format(**names) for name, text in statements.items()}
        self.create_statements: list[Composed] = [self._sql["create"], self._sql["create_index"]]

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

    def reschedule_job(self, kind: str, key: str, due_at: datetime, attempts: int) -> None:
        self._execute(self._sql["reschedule"], [due_at, kind, key, attempts])

    def drop_job(self, kind: str, key: str, attempts: int | None = None) -> None:
        if attempts is None:
            self._execute(self._sql["drop"], [kind, key])
        else:
            self._execute(self._sql["drop_attempt"], [kind, key, attempts])

    def next_due(self, kind: str) -> datetime | None:
        with self._datastore.transaction(commit=False) as curs:
            row = curs.execute(self._sql["next_due"], [kind], prepare=True).fetchone()
        due_at = None if row is None else row["due_at"]
        return None if due_at is None else due_at.astimezone(UTC)

    def extend_leases(self, kind: str, claims: Mapping[str, int], until: datetime) -> None:
        self._execute(self._sql["extend"], [until, list(claims), list(claims.values()), kind])

    def _execute(self, statement: Composed, params: Sequence[object]) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(statement, params, prepare=True)
