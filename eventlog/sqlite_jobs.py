"""The jobs of `eventlog.jobs` in an embedded (SQLite) event store: the layout of
`eventlog.postgres_jobs`, with due times as integer microseconds and the payload as JSON text.

SQLite has one writer at a time, so a claim is a select and an update in one IMMEDIATE
transaction (it takes the write lock before it reads): no two pollers can claim one job.

SQLite has no sequences: the fences come from the one row of ``job_fences``, moved on under the
write lock by every write, claim and retry of jobs (`next_fence`), so like PostgreSQL's they
only grow and no two claims share one.

A table made by an earlier version gets the missing columns and the partial index when the
store opens (`upgrade`), and loses the index that held the parked rows too.
"""

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore

from domain.ports import Job, JobKey
from eventlog.parked_jobs import ParkedJob

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

CREATE_STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS jobs (kind TEXT NOT NULL, key TEXT NOT NULL,"
    " due_at_us INTEGER NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL,"
    " parked_at_us INTEGER, parked_reason TEXT, fence INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (kind, key))",
    "CREATE TABLE IF NOT EXISTS job_fences (last INTEGER NOT NULL)",
)
"""The tables; their index and the row of `job_fences` are made by `SQLiteJobs.upgrade` (the
index needs columns an earlier version's table may lack, and the row a write, which must take
the write lock first: see `upgrade`)."""
ADDED_COLUMNS = {
    "parked_at_us": "INTEGER",
    "parked_reason": "TEXT",
    "fence": "INTEGER NOT NULL DEFAULT 0",
}
"""The columns a table made by an earlier version may lack, with their types."""
# Claims and next_due say `parked_at_us IS NULL`: SQLite uses a partial index for a query
# whose WHERE clause has its predicate's terms.
CREATE_INDEX = (
    "CREATE INDEX IF NOT EXISTS jobs_unparked_by_due ON jobs (kind, due_at_us)"
    " WHERE parked_at_us IS NULL"
)
OLD_INDEX = "jobs_by_due"
CLAIM = (
    "SELECT key, due_at_us, payload, attempts FROM jobs"
    " WHERE kind = ? AND due_at_us <= ? AND parked_at_us IS NULL ORDER BY due_at_us LIMIT ?"
)
"""The due jobs of a kind (kind, now, limit), earliest first: what a claim takes."""
NEXT_DUE = "SELECT min(due_at_us) FROM jobs WHERE kind = ? AND parked_at_us IS NULL"


def microseconds(instant: datetime) -> int:
    """SQLite has no timestamp type; integer microseconds since the epoch sort correctly."""
    return (instant - EPOCH) // timedelta(microseconds=1)


def instant(microseconds: int) -> datetime:
    return EPOCH + timedelta(microseconds=microseconds)


def next_fence(c: SQLiteCursor) -> int:
    """A fence greater than any given before, in the caller's write transaction."""
    c.execute("UPDATE job_fences SET last = last + 1 RETURNING last")
    return int(c.fetchone()[0])


def write_jobs(c: SQLiteCursor, jobs: Sequence[Job], done: Sequence[JobKey]) -> None:
    """In the caller's transaction: delete the done jobs, then write the others."""
    c.executemany("DELETE FROM jobs WHERE kind = ? AND key = ?", list(done))
    if not jobs:
        return
    fence = next_fence(c)
    c.executemany(
        "INSERT INTO jobs (kind, key, due_at_us, payload, attempts, fence)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET"
        " due_at_us = excluded.due_at_us, payload = excluded.payload,"
        " attempts = excluded.attempts, parked_at_us = NULL, parked_reason = NULL,"
        " fence = excluded.fence",
        [
            (
                job.kind,
                job.key,
                microseconds(job.due_at),
                json.dumps(job.payload),
                job.attempts,
                fence,
            )
            for job in jobs
        ],
    )


class SQLiteJobs:
    def __init__(self, datastore: SQLiteDatastore) -> None:
        self._datastore = datastore

    def upgrade(self) -> None:
        """Bring the table to this version's layout: add the columns it lacks, make the index
        of the jobs not parked, drop the one of every job, and give `job_fences` its row. The
        checks and the changes share the write lock, taken before the first read (SQLite has
        no ADD COLUMN IF NOT EXISTS; and in WAL mode a transaction that read before its first
        write fails at once, "database is locked", when another commit came in between, as a
        busy store's writer does)."""
        with self._immediate() as c:
            c.execute(
                "INSERT INTO job_fences (last) SELECT 0 WHERE NOT EXISTS (SELECT * FROM job_fences)"
            )
            c.execute("PRAGMA table_info(jobs)")
            present = {row["name"] for row in c.fetchall()}
            for column, kind in ADDED_COLUMNS.items():
                if column not in present:
                    c.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
            c.execute(CREATE_INDEX)
            c.execute(f"DROP INDEX IF EXISTS {OLD_INDEX}")

    def claim_due_jobs(self, kind: str, now: datetime, limit: int, lease: timedelta) -> list[Job]:
        with self._immediate() as c:
            c.execute(CLAIM, [kind, microseconds(now), limit])
            rows = c.fetchall()
            fence = next_fence(c) if rows else 0  # one for the batch: no other claim has it
            c.executemany(
                "UPDATE jobs SET due_at_us = ?, attempts = attempts + 1, fence = ?"
                " WHERE kind = ? AND key = ?",
                [(microseconds(now + lease), fence, kind, row["key"]) for row in rows],
            )
        return [
            Job(
                kind,
                row["key"],
                instant(row["due_at_us"]),
                json.loads(row["payload"]),
                row["attempts"] + 1,
                fence,
            )
            for row in rows
        ]

    def reschedule_job(self, kind: str, key: str, due_at: datetime, fence: int) -> None:
        with self._datastore.transaction(commit=True) as c:
            c.execute(
                "UPDATE jobs SET due_at_us = ? WHERE kind = ? AND key = ? AND fence = ?",
                [microseconds(due_at), kind, key, fence],
            )

    def drop_job(self, kind: str, key: str, fence: int | None = None) -> None:
        with self._datastore.transaction(commit=True) as c:
            c.execute(
                "DELETE FROM jobs WHERE kind = ? AND key = ? AND (? IS NULL OR fence = ?)",
                [kind, key, fence, fence],
            )

    def next_due(self, kind: str) -> datetime | None:
        with self._datastore.transaction(commit=False) as c:
            c.execute(NEXT_DUE, [kind])
            row = c.fetchone()
        return None if row[0] is None else instant(row[0])

    def extend_leases(self, kind: str, claims: Mapping[str, int], until: datetime) -> None:
        with self._datastore.transaction(commit=True) as c:
            c.executemany(
                "UPDATE jobs SET due_at_us = ? WHERE kind = ? AND key = ? AND fence = ?",
                [(microseconds(until), kind, key, fence) for key, fence in claims.items()],
            )

    def park_job(self, kind: str, key: str, fence: int, reason: str, at: datetime) -> bool:
        with self._datastore.transaction(commit=True) as c:
            c.execute(
                "UPDATE jobs SET parked_at_us = ?, parked_reason = ?"
                " WHERE kind = ? AND key = ? AND fence = ? AND parked_at_us IS NULL",
                [microseconds(at), reason, kind, key, fence],
            )
            c.execute("SELECT changes()")
            return bool(c.fetchone()[0])

    def parked_jobs(self, kind: str | None = None, limit: int = 100) -> list[ParkedJob]:
        with self._datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT kind, key, attempts, parked_at_us, parked_reason, payload FROM jobs"
                " WHERE parked_at_us IS NOT NULL AND (? IS NULL OR kind = ?)"
                " ORDER BY parked_at_us, kind, key LIMIT ?",
                [kind, kind, limit],
            )
            rows = c.fetchall()
        return [
            ParkedJob(
                row["kind"],
                row["key"],
                row["attempts"],
                instant(row["parked_at_us"]),
                row["parked_reason"],
                json.loads(row["payload"]),
            )
            for row in rows
        ]

    def retry_parked_jobs(self, kind: str, key: str | None, now: datetime) -> list[str]:
        with self._immediate() as c:
            c.execute(
                "SELECT key FROM jobs WHERE parked_at_us IS NOT NULL AND kind = ?"
                " AND (? IS NULL OR key = ?)",
                [kind, key, key],
            )
            keys = sorted(row["key"] for row in c.fetchall())
            c.execute(
                "UPDATE jobs SET parked_at_us = NULL, parked_reason = NULL, attempts = 0,"
                " due_at_us = ?, fence = ? WHERE parked_at_us IS NOT NULL AND kind = ?"
                " AND (? IS NULL OR key = ?)",
                [microseconds(now), next_fence(c), kind, key, key],
            )
        return keys

    def parked_job_counts(self) -> dict[str, int]:
        with self._datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT kind, count(*) FROM jobs WHERE parked_at_us IS NOT NULL GROUP BY kind"
            )
            return {row[0]: row[1] for row in c.fetchall()}

    @contextmanager
    def _immediate(self) -> Iterator[SQLiteCursor]:
        """A write transaction that holds the write lock from its first read."""
        with self._datastore.get_connection(commit=True) as conn:
            c = conn.cursor()
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
