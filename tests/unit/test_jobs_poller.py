"""Jobs without a database: how saves combine them, the backoff, the manual clock, and the
poller's decisions over an in-memory job store."""

import random
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from domain.ports import Job, SideRecords, Tracking
from eventlog.jobs import Backoff, JobPoller, ManualClock, RetryLater

T0 = datetime.fromisoformat("2030-01-01T00:00:00+00:00")


class InMemoryJobs:
    """The `JobStore` protocol over a dict, with a switch to play a database outage."""

    def __init__(self, *jobs: Job) -> None:
        self.rows = {(job.kind, job.key): job for job in jobs}
        self.down = 0
        """How many of the next calls fail."""

    def _call(self) -> None:
        if self.down:
            self.down -= 1
            raise ConnectionError("database unreachable")

    def claim_due_jobs(self, kind: str, now: datetime, limit: int, lease: timedelta) -> list[Job]:
        self._call()
        due = sorted(
            (job for job in self.rows.values() if job.kind == kind and job.due_at <= now),
            key=lambda job: job.due_at,
        )[:limit]
        for job in due:
            self.rows[kind, job.key] = replace(job, due_at=now + lease, attempts=job.attempts + 1)
        return [replace(job, attempts=job.attempts + 1) for job in due]

    def reschedule_job(self, kind: str, key: str, due_at: datetime, attempts: int) -> None:
        self._call()
        job = self.rows.get((kind, key))
        if job is not None and job.attempts == attempts:
            self.rows[kind, key] = replace(job, due_at=due_at)

    def drop_job(self, kind: str, key: str, attempts: int | None = None) -> None:
        self._call()
        job = self.rows.get((kind, key))
        if job is not None and attempts in (None, job.attempts):
            del self.rows[kind, key]

    def next_due(self, kind: str) -> datetime | None:
        self._call()
        return min((job.due_at for job in self.rows.values() if job.kind == kind), default=None)

    def extend_leases(self, kind: str, claims: Mapping[str, int], until: datetime) -> None:
        self._call()
        for key, attempts in claims.items():
            job = self.rows.get((kind, key))
            if job is not None and job.attempts == attempts:
                self.rows[kind, key] = replace(job, due_at=until)


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
