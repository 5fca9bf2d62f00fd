"""Jobs without a database: how saves combine them, the backoff, the manual clock, and the
poller's decisions over an in-memory job store."""

import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from eventsourcing.persistence import OperationalError
from psycopg_pool import PoolTimeout

from domain.ports import Job, SideRecords, Tracking
from eventlog.jobs import MAX_ATTEMPTS, Backoff, JobFailed, JobPoller, ManualClock, RetryLater

T0 = datetime.fromisoformat("2030-01-01T00:00:00+00:00")


class InMemoryJobs:
    """The `JobStore` protocol over a dict, with a switch to play a database outage."""

    def __init__(self, *jobs: Job) -> None:
        self.rows = {(job.kind, job.key): job for job in jobs}
        self.parked: dict[tuple[str, str], tuple[datetime, str]] = {}
        """(kind, key) -> when and why, of the parked rows."""
        self.down = 0
        """How many of the next calls fail."""
        self.fences = 0
        """The last fence given."""

    def _call(self) -> None:
        if self.down:
            self.down -= 1
            raise ConnectionError("database unreachable")

    def claim_due_jobs(self, kind: str, now: datetime, limit: int, lease: timedelta) -> list[Job]:
        self._call()
        due = sorted(
            (job for job in self._unparked() if job.kind == kind and job.due_at <= now),
            key=lambda job: job.due_at,
        )[:limit]
        claimed = []
        for job in due:
            self.fences += 1
            claimed.append(replace(job, attempts=job.attempts + 1, fence=self.fences))
            self.rows[kind, job.key] = replace(claimed[-1], due_at=now + lease)
        return claimed

    def reschedule_job(self, kind: str, key: str, due_at: datetime, fence: int) -> None:
        self._call()
        job = self.rows.get((kind, key))
        if job is not None and job.fence == fence:
            self.rows[kind, key] = replace(job, due_at=due_at)

    def drop_job(self, kind: str, key: str, fence: int | None = None) -> None:
        self._call()
        job = self.rows.get((kind, key))
        if job is not None and fence in (None, job.fence):
            del self.rows[kind, key]

    def next_due(self, kind: str) -> datetime | None:
        self._call()
        return min((job.due_at for job in self._unparked() if job.kind == kind), default=None)

    def extend_leases(self, kind: str, claims: Mapping[str, int], until: datetime) -> None:
        self._call()
        for key, fence in claims.items():
            job = self.rows.get((kind, key))
            if job is not None and job.fence == fence:
                self.rows[kind, key] = replace(job, due_at=until)

    def park_job(self, kind: str, key: str, fence: int, reason: str, at: datetime) -> bool:
        self._call()
        job = self.rows.get((kind, key))
        if job is None or job.fence != fence or (kind, key) in self.parked:
            return False
        self.parked[kind, key] = (at, reason)
        return True

    def _unparked(self) -> list[Job]:
        return [job for job in self.rows.values() if (job.kind, job.key) not in self.parked]


def _job(key: str, due_at: datetime = T0, kind: str = "work") -> Job:
    return Job(kind, key, due_at, {"key": key})


def test_combined_saves_keep_the_effect_of_their_order() -> None:
    a, b, c = _job("a"), _job("b"), _job("c")
    b_again = replace(b, payload={"again": True})
    parts = [
        SideRecords(jobs=[a, b], tracking=[Tracking("up", 5)]),
        SideRecords(done_jobs=[("work", "a"), ("work", "c")], tracking=[Tracking("up", 9, 0, 5)]),
        SideRecords(jobs=[c, b_again]),
    ]
    combined = SideRecords.combined(parts)

    assert combined.jobs == [b_again, c]  # a was finished by a later save
    assert combined.done_jobs == [("work", "a"), ("work", "c")]  # deleted before c is written
    assert [t.position for t in combined.tracking] == [5, 9]


def test_backoff_doubles_from_the_first_delay_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(first=timedelta(seconds=1), cap=timedelta(seconds=60), jitter=0.5)
    rng = random.Random(7)
    for attempts, full in [(1, 1), (2, 2), (3, 4), (7, 60), (10_000, 60)]:
        delays = [backoff.delay(attempts, rng).total_seconds() for _ in range(50)]
        assert all(full * 0.5 <= delay <= full for delay in delays), (attempts, delays)
    assert Backoff(jitter=0).delay(3, rng) == timedelta(seconds=4)


def test_a_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(T0)
    assert clock.now() == T0
    assert clock.advance(timedelta(minutes=5)) == T0 + timedelta(minutes=5)
    clock.set(T0)
    assert clock.now() == T0


def test_a_job_runs_when_the_clock_reaches_its_due_time_and_is_then_dropped() -> None:
    clock = ManualClock(T0)
    store = InMemoryJobs(_job("later", T0 + timedelta(seconds=10)))
    ran: list[Job] = []
    poller = JobPoller(store, "work", ran.append, clock=clock)

    assert poller.run_once() == 0
    clock.advance(timedelta(seconds=10))
    assert poller.run_once() == 1

    assert [(job.key, job.due_at, job.attempts) for job in ran] == [
        ("later", T0 + timedelta(seconds=10), 1)
    ]
    assert store.rows == {}


def test_a_failing_handler_has_its_job_rescheduled_with_backoff() -> None:
    clock = ManualClock(T0)
    store = InMemoryJobs(_job("flaky"))
    backoff = Backoff(first=timedelta(seconds=2), jitter=0)

    def fail(job: Job) -> None:
        raise RuntimeError("provider said 500")

    poller = JobPoller(store, "work", fail, clock=clock, backoff=backoff)
    poller.run_once()
    assert store.rows["work", "flaky"].due_at == T0 + timedelta(seconds=2)

    clock.advance(timedelta(seconds=2))
    poller.run_once()
    assert store.rows["work", "flaky"].due_at == clock.now() + timedelta(seconds=4)
    assert store.rows["work", "flaky"].attempts == 2


def test_retry_later_reschedules_after_its_own_delay() -> None:
    clock = ManualClock(T0)
    store = InMemoryJobs(_job("breaker-open"))

    def later(job: Job) -> None:
        raise RetryLater("breaker open", delay=timedelta(milliseconds=250))

    JobPoller(store, "work", later, clock=clock).run_once()
    assert store.rows["work", "breaker-open"].due_at == T0 + timedelta(milliseconds=250)


def test_a_job_replaced_while_its_handler_ran_is_kept() -> None:
    clock = ManualClock(T0)
    store = InMemoryJobs(_job("deadline"))
    renewed = _job("deadline", T0 + timedelta(minutes=1))

    def renew(job: Job) -> None:
        store.rows["work", "deadline"] = renewed  # what a commit with SideRecords.jobs does

    JobPoller(store, "work", renew, clock=clock).run_once()
    assert store.rows == {("work", "deadline"): renewed}


def test_a_poller_claims_only_its_kind_and_at_most_a_batch() -> None:
    store = InMemoryJobs(*(_job(str(n)) for n in range(5)), _job("x", kind="other"))
    ran: list[str] = []
    clock = ManualClock(T0)
    poller = JobPoller(store, "work", lambda job: ran.append(job.key), clock=clock, batch=3)

    assert poller.run_once() == 3
    assert poller.run_once() == 2
    assert sorted(ran) == ["0", "1", "2", "3", "4"]
    assert list(store.rows) == [("other", "x")]


@pytest.mark.timeout(20)
def test_the_running_poller_outlives_an_outage_and_wakes_for_new_jobs() -> None:
    store = InMemoryJobs(_job("first"))
    store.down = 3
    done = {key: threading.Event() for key in ("first", "second")}
    poller = JobPoller(
        store,
        "work",
        lambda job: done[job.key].set(),
        clock=ManualClock(T0),
        max_wait=0.05,
        max_outage_pause=0.1,
    ).start()
    try:
        assert done["first"].wait(10), "the job never ran after the outage"
        store.rows["work", "second"] = _job("second")
        poller.wake()
        assert done["second"].wait(10)
    finally:
        poller.stop()
    assert store.rows == {}


def test_a_stopping_poller_hands_back_the_jobs_it_has_not_started() -> None:
    store = InMemoryJobs(_job("a"), _job("b"), _job("c"))
    clock = ManualClock(T0)
    ran: list[str] = []
    poller: JobPoller

    def run_and_stop(job: Job) -> None:
        ran.append(job.key)
        poller.stop()

    poller = JobPoller(store, "work", run_and_stop, clock=clock)
    assert poller.run_once() == 3

    assert ran == ["a"]
    assert {key: job.due_at for (_, key), job in store.rows.items()} == {"b": T0, "c": T0}


@pytest.mark.timeout(20)
def test_a_poller_runs_a_batch_concurrency_jobs_at_a_time() -> None:
    """Four jobs that each wait for the other three: they finish only if they run together."""
    store = InMemoryJobs(*(_job(str(n)) for n in range(4)))
    together = threading.Barrier(4, timeout=5)
    ran: list[str] = []

    def meet(job: Job) -> None:
        together.wait()
        ran.append(job.key)

    poller = JobPoller(store, "work", meet, clock=ManualClock(T0), concurrency=4)
    try:
        assert poller.run_once() == 4
    finally:
        poller.stop()
    assert sorted(ran) == ["0", "1", "2", "3"]
    assert store.rows == {}


def test_one_failing_job_of_a_concurrent_batch_is_rescheduled_alone() -> None:
    store = InMemoryJobs(*(_job(str(n)) for n in range(6)))
    clock = ManualClock(T0)

    def fail_on_3(job: Job) -> None:
        if job.key == "3":
            raise RuntimeError("provider said no")

    poller = JobPoller(
        store, "work", fail_on_3, clock=clock, concurrency=3, backoff=Backoff(jitter=0)
    )
    try:
        assert poller.run_once() == 6
    finally:
        poller.stop()
    assert list(store.rows) == [("work", "3")]
    assert store.rows["work", "3"].due_at > T0


def _failing(error: Exception) -> Callable[[Job], None]:
    def fail(job: Job) -> None:
        raise error

    return fail


def _run_while_due(poller: JobPoller, clock: ManualClock, rounds: int) -> int:
    """Run the poller `rounds` times, each a day later (past any backoff); how many claimed."""
    claimed = 0
    for _ in range(rounds):
        claimed += poller.run_once()
        clock.advance(timedelta(days=1))
    return claimed


def test_a_job_that_failed_for_good_is_parked_at_once_with_one_error_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(T0)
    store = InMemoryJobs(_job("refused"))
    refused = JobFailed("POST /capture: 404 no authorization 'auth-1'\nsecond line")
    poller = JobPoller(store, "work", _failing(refused), clock=clock)

    with caplog.at_level(logging.INFO, logger="strata.jobs"):
        assert _run_while_due(poller, clock, 3) == 1

    assert store.parked == {
        ("work", "refused"): (T0, "POST /capture: 404 no authorization 'auth-1'")
    }
    assert store.next_due("work") is None
    (line,) = caplog.records
    assert line.levelno == logging.ERROR and line.exc_info is None
    assert line.getMessage() == (
        "job work refused parked after 1 attempts: POST /capture: 404 no authorization 'auth-1'"
    )


def test_an_unexpected_error_is_retried_a_bounded_number_of_times_then_parked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(T0)
    store = InMemoryJobs(_job("buggy"))
    poller = JobPoller(store, "work", _failing(KeyError("amount")), clock=clock, max_attempts=4)

    with caplog.at_level(logging.INFO, logger="strata.jobs"):
        assert _run_while_due(poller, clock, 10) == 4

    (at, reason) = store.parked["work", "buggy"]
    assert (at, reason) == (T0 + timedelta(days=3), "KeyError: 'amount'")
    assert store.rows["work", "buggy"].attempts == 4
    levels = [(r.levelno, r.exc_info is not None) for r in caplog.records]
    assert levels == [(logging.WARNING, False)] * 3 + [(logging.ERROR, True)]
    assert "failed (attempt 1 of 4): KeyError: 'amount'" in caplog.records[0].getMessage()


def test_the_default_bound_parks_a_job_failing_forever() -> None:
    clock = ManualClock(T0)
    store = InMemoryJobs(_job("buggy"))
    poller = JobPoller(store, "work", _failing(RuntimeError("bug")), clock=clock)
    assert _run_while_due(poller, clock, MAX_ATTEMPTS + 5) == MAX_ATTEMPTS
    assert ("work", "buggy") in store.parked


@pytest.mark.parametrize(
    "error",
    [
        RetryLater("provider down"),
        OperationalError("connection refused"),
        PoolTimeout("no connection within 5 s"),
    ],
    ids=["retry later", "store outage", "no pooled connection"],
)
def test_expected_failures_are_retried_however_long_they_last(error: Exception) -> None:
    clock = ManualClock(T0)
    store = InMemoryJobs(_job("patient"))
    poller = JobPoller(store, "work", _failing(error), clock=clock, max_attempts=3)
    assert _run_while_due(poller, clock, 12) == 12
    assert store.parked == {}
    assert store.next_due("work") is not None


def test_a_job_replaced_while_its_handler_failed_is_not_parked() -> None:
    """The park is fenced like a reschedule: the new intent of the key runs."""
    clock = ManualClock(T0)
    store = InMemoryJobs(_job("deadline"))
    renewed = _job("deadline", T0 + timedelta(minutes=1))

    def renew_then_fail(job: Job) -> None:
        store.rows["work", "deadline"] = renewed
        raise JobFailed("gave up")

    JobPoller(store, "work", renew_then_fail, clock=clock).run_once()
    assert store.parked == {}
    assert store.rows == {("work", "deadline"): renewed}
