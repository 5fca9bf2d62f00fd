"""Durable jobs in the event store, on SQLite and on PostgreSQL: written and removed with the
events, claimed under a lease, run by pollers that never share one."""

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import RecordConflictError

from contexts.settings import Settings
from domain.ports import Job, SideRecords
from domain.users.profile import UserProfile
from domain.users.service import email_claim
from eventlog.envelope import envelope_source
from eventlog.jobs import Backoff, JobPoller, JobStore, ManualClock
from eventlog.stores import Services, build_services

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def _jobs(stores: Services) -> JobStore:
    return cast(JobStore, stores.users.recorder)


def _kind() -> str:
    """A kind of the test's own: the stores are shared by the tests of a session."""
    return f"test-{uuid4().hex[:8]}"


def _registration(email: str | None = None) -> tuple[UserProfile, SideRecords]:
    profile = UserProfile.register("Someone", email or f"{uuid4().hex}@example.com")
    return profile, SideRecords(claims=[email_claim(profile.email, profile.id)])


def _save(stores: Services, records: SideRecords, *events: object) -> None:
    stores.users.save(*events, side_records=records)  # type: ignore[arg-type]


def _write(stores: Services, *jobs: Job) -> None:
    _save(stores, SideRecords(jobs=jobs))


def _all_due(stores: Services, kind: str) -> list[Job]:
    """Every job of the kind, claimed as if the end of time had come."""
    return _jobs(stores).claim_due_jobs(kind, T0 + timedelta(days=3650), 1000, LEASE)


def test_jobs_are_written_with_the_events_and_replaced_by_key(stores: Services) -> None:
    kind = _kind()
    profile, records = _registration()
    payload = {"amount": "12.30", "steps": ["authorize", "capture"], "nested": {"n": 1}}
    first = Job(kind, "a", T0, payload)
    _save(stores, SideRecords(claims=records.claims, jobs=[first]), profile)

    _write(stores, Job(kind, "a", T0 + timedelta(seconds=5), {"v": 2}), Job(kind, "b", T0))

    assert _jobs(stores).next_due(kind) == T0
    claimed = _all_due(stores, kind)
    assert [(job.key, job.due_at, job.payload, job.attempts) for job in claimed] == [
        ("b", T0, {}, 1),
        ("a", T0 + timedelta(seconds=5), {"v": 2}, 1),
    ]


def test_done_jobs_are_deleted_before_new_ones_are_written(stores: Services) -> None:
    kind = _kind()
    _write(stores, Job(kind, "a", T0), Job(kind, "b", T0))

    again = Job(kind, "b", T0 + timedelta(minutes=1), {"again": True})
    _save(stores, SideRecords(jobs=[again], done_jobs=[(kind, "a"), (kind, "b")]))

    (claimed,) = _all_due(stores, kind)
    assert (claimed.key, claimed.due_at, claimed.payload, claimed.attempts) == (
        "b",
        again.due_at,
        {"again": True},
        1,
    )


def test_a_claimed_job_is_hidden_until_its_lease_ends_then_comes_back(stores: Services) -> None:
    """A poller that dies in the handler loses nothing: the job is due again at lease end."""
    kind, jobs = _kind(), _jobs(stores)
    _write(stores, Job(kind, "crashy", T0))

    assert len(jobs.claim_due_jobs(kind, T0, 10, LEASE)) == 1
    assert jobs.claim_due_jobs(kind, T0 + LEASE - timedelta(microseconds=1), 10, LEASE) == []
    assert jobs.next_due(kind) == T0 + LEASE

    (again,) = jobs.claim_due_jobs(kind, T0 + LEASE, 10, LEASE)
    assert (again.key, again.due_at, again.attempts) == ("crashy", T0 + LEASE, 2)


def test_an_extended_lease_hides_a_claimed_job_longer_but_not_one_claimed_again(
    stores: Services,
) -> None:
    kind, jobs = _kind(), _jobs(stores)
    _write(stores, Job(kind, "held", T0), Job(kind, "lost", T0))
    claims = {job.key: job.fence for job in jobs.claim_due_jobs(kind, T0, 10, LEASE)}
    (lost,) = jobs.claim_due_jobs(kind, T0 + LEASE, 1, LEASE)  # another poller's, lease ended
    assert lost.key in claims

    jobs.extend_leases(kind, claims, T0 + 3 * LEASE)  # only the claims still at their fence
    kept = next(key for key in claims if key != lost.key)
    assert [
        (job.key, job.due_at, job.attempts)
        for job in jobs.claim_due_jobs(kind, T0 + 2 * LEASE, 10, LEASE)
    ] == [(lost.key, T0 + 2 * LEASE, 3)]
    renewed = jobs.claim_due_jobs(kind, T0 + 3 * LEASE, 10, LEASE)
    assert (kept, 2) in [(job.key, job.attempts) for job in renewed]


@pytest.mark.timeout(60)
def test_a_job_running_past_its_lease_keeps_its_claim(stores: Services) -> None:
    """The running poller renews the lease, so a second poller never takes the job up while
    the first still runs it; one that dies mid-job loses it a lease later."""
    kind, lease = _kind(), timedelta(seconds=0.3)
    _write(stores, Job(kind, "long", datetime.now(UTC)))
    runs: list[float] = []
    finished = threading.Event()

    def handle(job: Job) -> None:
        runs.append(time.monotonic())
        time.sleep(lease.total_seconds() * 5)
        finished.set()

    pollers = [JobPoller(_jobs(stores), kind, handle, lease=lease, max_wait=0.05) for _ in range(2)]
    for poller in pollers:
        poller.start()
    try:
        assert finished.wait(20)
        time.sleep(lease.total_seconds())
    finally:
        for poller in pollers:
            poller.stop()
    assert len(runs) == 1
    assert _jobs(stores).next_due(kind) is None


def test_a_stale_drop_leaves_a_job_claimed_again(stores: Services) -> None:
    kind, jobs = _kind(), _jobs(stores)
    _write(stores, Job(kind, "slow", T0))
    (first,) = jobs.claim_due_jobs(kind, T0, 10, LEASE)
    (second,) = jobs.claim_due_jobs(kind, T0 + LEASE, 10, LEASE)

    jobs.drop_job(kind, "slow", fence=first.fence)  # the first poller, finishing late
    assert jobs.next_due(kind) is not None
    jobs.drop_job(kind, "slow", fence=second.fence)
    assert jobs.next_due(kind) is None


def test_a_stale_reschedule_leaves_a_job_claimed_again(stores: Services) -> None:
    """A poller whose lease lapsed and whose handler then failed must not shorten the lease of
    the poller that claimed the job since."""
    kind, jobs = _kind(), _jobs(stores)
    _write(stores, Job(kind, "slow", T0))
    (first,) = jobs.claim_due_jobs(kind, T0, 10, LEASE)
    (second,) = jobs.claim_due_jobs(kind, T0 + LEASE, 10, LEASE)

    jobs.reschedule_job(kind, "slow", T0 + LEASE, first.fence)
    assert jobs.next_due(kind) == T0 + 2 * LEASE
    jobs.reschedule_job(kind, "slow", T0 + LEASE, second.fence)
    assert jobs.next_due(kind) == T0 + LEASE


def test_a_manual_clock_decides_when_a_poller_runs_a_job(stores: Services) -> None:
    kind, clock = _kind(), ManualClock(T0)
    _write(stores, Job(kind, "deadline", T0 + timedelta(minutes=15), {"step": "authorize"}))
    fired: list[Job] = []
    poller = JobPoller(_jobs(stores), kind, fired.append, clock=clock)

    assert poller.run_once() == 0
    clock.advance(timedelta(minutes=15) - timedelta(microseconds=1))
    assert poller.run_once() == 0
    clock.advance(timedelta(microseconds=1))
    assert poller.run_once() == 1

    assert [(job.key, job.payload) for job in fired] == [("deadline", {"step": "authorize"})]
    assert _jobs(stores).next_due(kind) is None


def test_a_failing_handler_is_retried_after_a_growing_backoff(stores: Services) -> None:
    kind, clock = _kind(), ManualClock(T0)
    _write(stores, Job(kind, "flaky", T0))
    failures = 2

    def handle(job: Job) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("provider unreachable")

    backoff = Backoff(first=timedelta(seconds=1), jitter=0)
    poller = JobPoller(_jobs(stores), kind, handle, clock=clock, backoff=backoff)
    assert poller.run_once() == 1
    assert _jobs(stores).next_due(kind) == T0 + timedelta(seconds=1)
    clock.advance(timedelta(seconds=1))
    assert poller.run_once() == 1
    assert _jobs(stores).next_due(kind) == clock.now() + timedelta(seconds=2)
    clock.advance(timedelta(seconds=2))
    assert poller.run_once() == 1
    assert _jobs(stores).next_due(kind) is None


def test_an_outcome_and_the_removal_of_its_job_commit_together(stores: Services) -> None:
    """The handler's events and `done_jobs` share a transaction: a conflict keeps the job."""
    kind, clock = _kind(), ManualClock(T0)
    taken = f"{uuid4().hex}@example.com"
    owner, owner_records = _registration(taken)
    _save(stores, owner_records, owner)
    _write(stores, Job(kind, "outcome", T0))
    conflicts: list[Exception] = []

    def handle(job: Job) -> None:
        email = taken if not conflicts else None
        profile, records = _registration(email)
        done = SideRecords(claims=records.claims, done_jobs=[(job.kind, job.key)])
        try:
            _save(stores, done, profile)
        except RecordConflictError as error:
            conflicts.append(error)
            raise

    before = stores.users.recorder.max_notification_id()
    poller = JobPoller(_jobs(stores), kind, handle, clock=clock, backoff=Backoff(jitter=0))
    poller.run_once()
    assert len(conflicts) == 1
    assert stores.users.recorder.max_notification_id() == before
    assert _jobs(stores).next_due(kind) == T0 + timedelta(seconds=1)

    clock.advance(timedelta(seconds=1))
    poller.run_once()
    assert (
        len(envelope_source(stores.users.recorder).select_envelopes("users", before or 0, 9)) == 1
    )
    assert _jobs(stores).next_due(kind) is None


@pytest.mark.postgres
@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
@pytest.mark.timeout(60)
def test_two_pollers_never_run_the_same_job_at_once(stores: Services) -> None:
    kind, count = _kind(), 60
    _write(stores, *(Job(kind, f"job-{n}", T0) for n in range(count)))
    running: set[str] = set()
    runs: list[tuple[int, str]] = []
    overlaps: list[str] = []
    guard = threading.Lock()

    def handle(job: Job) -> None:
        with guard:
            if job.key in running:
                overlaps.append(job.key)
            running.add(job.key)
            runs.append((threading.get_ident(), job.key))
        time.sleep(0.005)
        with guard:
            running.discard(job.key)

    pollers = [
        JobPoller(_jobs(stores), kind, handle, clock=ManualClock(T0), batch=4, max_wait=0.05)
        for _ in range(2)
    ]
    for poller in pollers:
        poller.start()
    deadline = time.monotonic() + 30
    while _jobs(stores).next_due(kind) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    for poller in pollers:
        poller.stop()

    assert overlaps == []
    assert sorted(key for _, key in runs) == sorted(f"job-{n}" for n in range(count))
    assert len({thread for thread, _ in runs}) == 2, "one poller did all the work"


@pytest.mark.postgres
@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
def test_a_store_made_before_jobs_existed_gets_their_table(
    settings: Settings, postgres_stores: dict[str, str]
) -> None:
    build_services(settings).close()
    with psycopg.connect(postgres_stores["users"], autocommit=True) as conn:
        conn.execute("DROP TABLE users_jobs")
    stores = build_services(settings)
    try:
        kind = _kind()
        _write(stores, Job(kind, "a", T0))
        assert _jobs(stores).next_due(kind) == T0
    finally:
        stores.close()
