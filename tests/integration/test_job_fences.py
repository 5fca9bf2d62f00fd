"""The fence of a claim, on SQLite and on PostgreSQL: a poller stalled past its lease can no
longer reschedule, renew, park or drop a job once anything happened to it since its claim, even
when the job's attempts have come back to the count of that claim (a retry or a rewrite resets
them)."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import uuid4

import pytest

from domain.ports import Job, SideRecords
from eventlog.jobs import JobTable
from eventlog.stores import Services

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
KEY = "stalled"


def _jobs(stores: Services) -> JobTable:
    return cast(JobTable, stores.users.recorder)


def _write(stores: Services, records: SideRecords) -> None:
    stores.users.save(side_records=records)


def _parked_and_retried(stores: Services, kind: str, now: datetime) -> None:
    """Another poller claims the job once the stalled one's lease ended, and parks it; an
    operator retries it (`replay jobs retry`): its attempts are back at 0."""
    jobs = _jobs(stores)
    (parker,) = jobs.claim_due_jobs(kind, T0 + LEASE, 1, LEASE)
    assert jobs.park_job(kind, KEY, parker.fence, "refused", T0 + LEASE)
    assert jobs.retry_parked_jobs(kind, KEY, now) == [KEY]


def _rewritten(stores: Services, kind: str, now: datetime) -> None:
    """A commit writes the job of the same key anew (a new intent, attempts 0)."""
    _write(stores, SideRecords(jobs=[Job(kind, KEY, now)]))


def _finished_and_rewritten(stores: Services, kind: str, now: datetime) -> None:
    """A commit finishes the job and writes one of the same key: a new row."""
    _write(stores, SideRecords(jobs=[Job(kind, KEY, now)], done_jobs=[(kind, KEY)]))


Since = Callable[[Services, str, datetime], None]


@pytest.mark.parametrize(
    "since",
    [_parked_and_retried, _rewritten, _finished_and_rewritten],
    ids=["parked and retried", "rewritten", "finished and rewritten"],
)
def test_a_stalled_poller_changes_nothing_of_a_job_claimed_anew(
    stores: Services, since: Since
) -> None:
    kind, jobs = f"test-{uuid4().hex[:8]}", _jobs(stores)
    _write(stores, SideRecords(jobs=[Job(kind, KEY, T0)]))
    (stalled,) = jobs.claim_due_jobs(kind, T0, 1, LEASE)
    now = T0 + timedelta(hours=1)
    since(stores, kind, now)
    (fresh,) = jobs.claim_due_jobs(kind, now, 1, LEASE)
    assert fresh.attempts == stalled.attempts  # the count alone could not tell the claims apart
    held_until = now + LEASE

    jobs.reschedule_job(kind, KEY, now, stalled.fence)
    jobs.extend_leases(kind, {KEY: stalled.fence}, now + 10 * LEASE)
    assert not jobs.park_job(kind, KEY, stalled.fence, "late", now)
    jobs.drop_job(kind, KEY, fence=stalled.fence)

    assert jobs.next_due(kind) == held_until
    assert jobs.parked_jobs(kind) == []
    jobs.reschedule_job(kind, KEY, now, fresh.fence)  # the holder of the job still can
    assert jobs.next_due(kind) == now


def test_a_jobs_fence_only_grows_across_claims_retries_and_rewrites(stores: Services) -> None:
    kind, jobs = f"test-{uuid4().hex[:8]}", _jobs(stores)
    _write(stores, SideRecords(jobs=[Job(kind, KEY, T0)]))
    (first,) = jobs.claim_due_jobs(kind, T0, 1, LEASE)
    _parked_and_retried(stores, kind, T0 + LEASE)
    (after_retry,) = jobs.claim_due_jobs(kind, T0 + LEASE, 1, LEASE)
    _finished_and_rewritten(stores, kind, T0 + 2 * LEASE)
    (after_rewrite,) = jobs.claim_due_jobs(kind, T0 + 2 * LEASE, 1, LEASE)

    assert 0 < first.fence < after_retry.fence < after_rewrite.fence
