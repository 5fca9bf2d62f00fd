"""The jobs table's layout, on SQLite and on PostgreSQL: a table of the previous version (no
fence, an index by due time holding the parked jobs too) is brought to this one when the store
opens, its jobs intact; claims and `next_due` read the index of the jobs not parked."""

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
import pytest
from psycopg.sql import SQL, Composed

from contexts.settings import Settings
from eventlog.jobs import JobTable
from eventlog.postgres_recorder import PostgresSideRecordRecorder
from eventlog.sqlite_jobs import CLAIM, NEXT_DUE, microseconds
from eventlog.stores import Services, build_services, sqlite_path

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
KIND = "test-layout"
OLD_ROWS = [  # kind, key, due time, JSON payload, attempts, parked at, why
    (KIND, "due", T0, '{"n": 1}', 3, None, None),
    (KIND, "parked", T0, "{}", 2, T0, "refused"),
]

POSTGRES_OLD_LAYOUT = [
    "DROP TABLE users_jobs",
    "CREATE TABLE users_jobs (kind text NOT NULL, key text NOT NULL,"
    " due_at timestamptz NOT NULL, payload jsonb NOT NULL, attempts integer NOT NULL,"
    " parked_at timestamptz, parked_reason text, PRIMARY KEY (kind, key))",
    "CREATE INDEX users_jobs_by_due ON users_jobs (kind, due_at)",
]
SQLITE_OLD_LAYOUT = [
    "DROP TABLE jobs",
    "DROP TABLE job_fences",
    "CREATE TABLE jobs (kind TEXT NOT NULL, key TEXT NOT NULL, due_at_us INTEGER NOT NULL,"
    " payload TEXT NOT NULL, attempts INTEGER NOT NULL, parked_at_us INTEGER,"
    " parked_reason TEXT, PRIMARY KEY (kind, key))",
    "CREATE INDEX jobs_by_due ON jobs (kind, due_at_us)",
]


def _postgres_url(settings: Settings) -> str:
    url = settings.database_urls()["users"]
    assert url is not None
    return url


def _make_old_layout(settings: Settings) -> None:
    """The users store's jobs table as the previous version made it, holding `OLD_ROWS`."""
    if settings.mode == "embedded":
        with sqlite3.connect(sqlite_path(settings, "users")) as conn:
            for statement in SQLITE_OLD_LAYOUT:
                conn.execute(statement)
            conn.executemany(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (kind, key, microseconds(due), payload, attempts, at and microseconds(at), why)
                    for kind, key, due, payload, attempts, at, why in OLD_ROWS
                ],
            )
        return
    with psycopg.connect(_postgres_url(settings), autocommit=True) as conn:
        for statement in POSTGRES_OLD_LAYOUT:
            conn.execute(statement)
        with conn.cursor() as curs:
            curs.executemany("INSERT INTO users_jobs VALUES (%s, %s, %s, %s, %s, %s, %s)", OLD_ROWS)


def _layout(settings: Settings) -> tuple[set[str], dict[str, str]]:
    """The users store's jobs table: its columns, and its indexes' definitions by name."""
    if settings.mode == "embedded":
        with sqlite3.connect(sqlite_path(settings, "users")) as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
            indexes = conn.execute(
                "SELECT name, coalesce(sql, '') FROM sqlite_master"
                " WHERE type = 'index' AND tbl_name = 'jobs'"
            )
            return columns, dict(indexes.fetchall())
    with psycopg.connect(_postgres_url(settings)) as pg:
        names = {
            row[0]
            for row in pg.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'users_jobs'"
            )
        }
        definitions = pg.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'users_jobs'"
        )
        return names, dict(definitions.fetchall())


def test_a_table_of_the_previous_version_gets_the_fence_and_the_partial_index(
    settings: Settings,
) -> None:
    build_services(settings).close()
    _make_old_layout(settings)
    stores = build_services(settings)
    try:
        jobs = cast(JobTable, stores.users.recorder)
        claimed = jobs.claim_due_jobs(KIND, T0, 10, LEASE)
        (parked,) = jobs.parked_jobs(KIND)
        jobs.drop_job(KIND, "due")
    finally:
        stores.close()
    columns, indexes = _layout(settings)
    build_services(settings).close()  # opening again changes nothing

    assert [(job.key, job.due_at, job.payload, job.attempts) for job in claimed] == [
        ("due", T0, {"n": 1}, 4)
    ]
    assert claimed[0].fence > 0
    assert (parked.key, parked.attempts, parked.parked_at, parked.reason) == (
        "parked",
        2,
        T0,
        "refused",
    )
    assert "fence" in columns
    (partial,) = (name for name in indexes if name.endswith("jobs_unparked_by_due"))
    assert indexes[partial].endswith(("WHERE (parked_at IS NULL)", "WHERE parked_at_us IS NULL"))
    assert not any(name.endswith("jobs_by_due") for name in indexes)
    assert _layout(settings) == (columns, indexes)


def _explain(conn: psycopg.Connection[Any], statement: Composed, params: Any) -> str:
    plan = conn.execute(SQL("EXPLAIN ") + statement, params).fetchall()
    return "\n".join(row[0] for row in plan)


@pytest.mark.postgres
@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
def test_postgres_claims_and_next_due_read_the_index_of_the_jobs_not_parked(
    stores: Services, settings: Settings
) -> None:
    jobs = cast(PostgresSideRecordRecorder, stores.users.recorder).jobs
    with psycopg.connect(_postgres_url(settings)) as conn:
        conn.execute("SET enable_seqscan = off")  # a plan that does not hang on the row count
        claim = _explain(
            conn,
            jobs.statement("claim"),
            {"kind": KIND, "now": T0, "limit": 16, "lease": LEASE},
        )
        next_due = _explain(conn, jobs.statement("next_due"), [KIND])

    index_scan = "Scan using users_jobs_unparked_by_due on users_jobs"
    assert index_scan in claim, claim
    assert "Index Cond: ((kind = 'test-layout'::text) AND (due_at <= " in claim, claim
    assert index_scan in next_due, next_due
    assert "Index Cond: (kind = 'test-layout'::text)" in next_due, next_due


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_sqlite_claims_and_next_due_read_the_index_of_the_jobs_not_parked(
    stores: Services, settings: Settings
) -> None:
    queries: list[tuple[str, list[str | int]]] = [(CLAIM, [KIND, 0, 16]), (NEXT_DUE, [KIND])]
    with sqlite3.connect(sqlite_path(settings, "users")) as conn:
        claim, next_due = (
            " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", params))
            for query, params in queries
        )

    assert claim == "SEARCH jobs USING INDEX jobs_unparked_by_due (kind=? AND due_at_us<?)"
    assert next_due == "SEARCH jobs USING INDEX jobs_unparked_by_due (kind=?)"
