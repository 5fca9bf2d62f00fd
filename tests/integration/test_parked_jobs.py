"""Parked jobs in the event store, on SQLite and on PostgreSQL: kept with their reason, never
claimed again, listed and retried by operators, and added to a store made before they existed."""

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import uuid4

import psycopg
import pytest

from contexts.settings import Settings
from domain.ports import Job, SideRecords
from eventlog.jobs import JobFailed, JobPoller, JobTable, ManualClock
from eventlog.stores import Services, build_services, sqlite_path

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
LATER = T0 + timedelta(days=3650)


def _jobs(stores: Services) -> JobTable:
    return cast(JobTable, stores.users.recorder)


def _kind() -> str:
    """A kind of the test's own: the PostgreSQL stores are shared by the tests of a session."""
    return f"test-{uuid4().hex[:8]}"


def _write(stores: Services, *jobs: Job) -> None:
    stores.users.save(side_records=SideRecords(jobs=jobs))


def _claimed(jobs: list[Job]) -> list[tuple[str, datetime, object, int]]:
    """The claimed jobs without their fences (the stores' sequences, shared by the tests)."""
    return [(job.key, job.due_at, job.payload, job.attempts) for job in jobs]


def _park(stores: Services, kind: str, key: str, reason: str = "refused") -> Job:
    (claimed,) = _jobs(stores).claim_due_jobs(kind, T0, 1, LEASE)
    assert claimed.key == key
    assert _jobs(stores).park_job(kind, key, claimed.fence, reason, T0 + timedelta(seconds=1))
    return claimed


def test_a_parked_job_is_kept_listed_and_never_claimed_again(stores: Services) -> None:
    kind, jobs = _kind(), _jobs(stores)
    _write(stores, Job(kind, "bad", T0, {"amount": "12.30"}), Job(kind, "good", T0))
    _park(stores, kind, "bad", "POST /capture: 404 no authorization")

    assert _claimed(jobs.claim_due_jobs(kind, LATER, 10, LEASE)) == [("good", T0, {}, 1)]
    jobs.drop_job(kind, "good")
    assert jobs.next_due(kind) is None
    (parked,) = jobs.parked_jobs(kind)
    assert parked.as_json() == {
        "kind": kind,
        "key": "bad",
        "attempts": 1,
        "parked_at": (T0 + timedelta(seconds=1)).isoformat(),
        "reason": "POST /capture: 404 no authorization",
        "payload": {"amount": "12.30"},
    }
    assert jobs.parked_job_counts()[kind] == 1
    assert kind in {job.kind for job in jobs.parked_jobs()}


def test_parking_is_fenced_by_the_claim(stores: Services) -> None:
    """A poller whose lease lapsed must not park the job another poller claimed since."""
    kind, jobs = _kind(), _jobs(stores)
    _write(stores, Job(kind, "slow", T0))
    (first,) = jobs.claim_due_jobs(kind, T0, 10, LEASE)
    (second,) = jobs.claim_due_jobs(kind, T0 + LEASE, 10, LEASE)

    assert not jobs.park_job(kind, "slow", first.fence, "late", T0)
    assert jobs.parked_jobs(kind) == []
    assert jobs.park_job(kind, "slow", second.fence, "refused", T0)
    assert not jobs.park_job(kind, "slow", second.fence, "again", T0)  # parked already
    assert [job.reason for job in jobs.parked_jobs(kind)] == ["refused"]


def test_retrying_unparks_one_job_or_all_of_a_kind_with_attempts_reset(stores: Services) -> None:
    kind, jobs = _kind(), _jobs(stores)
    _write(stores, *(Job(kind, key, T0) for key in ("a", "b", "c")), Job(kind, "free", LATER))
    for key in ("a", "b", "c"):
        _park(stores, kind, key)
    now = T0 + timedelta(hours=1)

    assert jobs.retry_parked_jobs(kind, "b", now) == ["b"]
    assert jobs.retry_parked_jobs(kind, "b", now) == []  # no longer parked
    assert jobs.retry_parked_jobs(kind, "free", now) == []  # never was
    assert _claimed(jobs.claim_due_jobs(kind, now, 10, LEASE)) == [("b", now, {}, 1)]

    assert jobs.retry_parked_jobs(kind, None, now) == ["a", "c"]
    assert jobs.parked_jobs(kind) == []
    assert [(j.key, j.attempts) for j in jobs.claim_due_jobs(kind, now, 10, LEASE)] == [
        ("a", 1),
        ("c", 1),
    ]


def test_writing_or_finishing_a_parked_job_replaces_or_deletes_it(stores: Services) -> None:
    kind, jobs = _kind(), _jobs(stores)
    _write(stores, Job(kind, "renewed", T0), Job(kind, "finished", T0))
    _park(stores, kind, "renewed")
    _park(stores, kind, "finished")

    _write(stores, Job(kind, "renewed", T0 + timedelta(minutes=1), {"again": True}))
    stores.users.save(side_records=SideRecords(done_jobs=[(kind, "finished")]))

    assert jobs.parked_jobs(kind) == []
    assert _claimed(jobs.claim_due_jobs(kind, LATER, 10, LEASE)) == [
        ("renewed", T0 + timedelta(minutes=1), {"again": True}, 1)
    ]


def test_a_poller_parks_a_job_that_failed_for_good(stores: Services) -> None:
    kind, clock = _kind(), ManualClock(T0)
    _write(stores, Job(kind, "refused", T0))

    def refuse(job: Job) -> None:
        raise JobFailed("the provider refused it: 422 bad amount")

    poller = JobPoller(_jobs(stores), kind, refuse, clock=clock)
    assert poller.run_once() == 1
    clock.advance(timedelta(days=1))
    assert poller.run_once() == 0
    (parked,) = _jobs(stores).parked_jobs(kind)
    assert (parked.key, parked.parked_at, parked.reason) == (
        "refused",
        T0,
        "the provider refused it: 422 bad amount",
    )


def _drop_parked_columns(settings: Settings, postgres_stores: dict[str, str]) -> None:
    if settings.mode == "embedded":
        with sqlite3.connect(sqlite_path(settings, "users")) as conn:
            conn.execute("DROP INDEX jobs_unparked_by_due")  # SQLite keeps its columns
            conn.execute("ALTER TABLE jobs DROP COLUMN parked_at_us")
            conn.execute("ALTER TABLE jobs DROP COLUMN parked_reason")
        return
    with psycopg.connect(postgres_stores["users"], autocommit=True) as conn:
        conn.execute("ALTER TABLE users_jobs DROP COLUMN parked_at, DROP COLUMN parked_reason")


def test_a_store_made_before_jobs_could_be_parked_gets_their_columns(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    build_services(settings).close()
    urls = request.getfixturevalue("postgres_stores") if settings.mode == "stack" else {}
    _drop_parked_columns(settings, urls)
    stores = build_services(settings)
    try:
        kind = _kind()
        _write(stores, Job(kind, "a", T0))
        _park(stores, kind, "a")
        assert [job.key for job in _jobs(stores).parked_jobs(kind)] == ["a"]
    finally:
        stores.close()
    build_services(settings).close()  # opening again changes nothing
