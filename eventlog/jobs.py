"""Durable jobs: work due at a time (a call to a provider, a deadline), written in the
transaction of the events that make it due (`SideRecords.jobs`), run by a `JobPoller`.

A poller claims due jobs of one kind: the claim moves each job's due time to the end of a
lease, counts the attempt and gives the job a new fence, so no other poller takes it meanwhile
(PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: one writer). Then it runs the handler, one job
at a time (handlers block, as commands do):

- the handler returns: the job is done. A handler that commits an outcome removes the job in
  the same transaction (`SideRecords.done_jobs`); otherwise (a stale job, say) the poller drops
  it, unless the job was replaced meanwhile (a new row of the same key: another fence);
- the handler raises `RetryLater` (expected: a breaker open, a provider down) or its store is
  unreachable: the job is rescheduled with backoff, logged in one line, for as long as it takes;
- the handler raises `JobFailed` (no retry can help: a provider refusing the request): the job
  is parked, kept with its reason but never claimed again, until an operator retries it;
- the handler raises anything else: rescheduled with backoff, up to `max_attempts`, then parked
  (logged once at ERROR, with the last traceback);
- the process dies: the lease ends and the job is due again, for any poller. While a claimed
  job waits its turn or runs, the poller renews its lease every third of it, so the lease can
  be short (`LEASE`): a job whose process died is due again seconds later, well inside the
  deadlines that wait on it (a saga step's), and a long call never loses its claim.

So a job runs at least once, and handlers are idempotent: they load the aggregate, check that
the job is still wanted, and commit the outcome with the job's removal.

What the poller does with a claimed job (reschedule, drop, park, renew the lease) applies only
while the job still has the fence of the claim (`Job.fence`). A job's fence only grows, on
every claim, retry and rewrite, so a poller whose lease lapsed cannot touch a job it no longer
holds, even when a retry or a rewrite has brought the attempts back to the count of its claim.

Between claims the poller sleeps until the next due job, at most `max_wait` (jobs written by
other processes are seen that late at worst), or until woken (`wake`, after a local commit).
Database errors are logged and retried with a growing pause: the poller outlives outages.
Time comes from a `Clock`: tests drive due times with a `ManualClock`.
"""

import logging
import random
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from domain.ports import Job
from eventlog.outages import STORE_OUTAGES
from eventlog.parked_jobs import ParkedJob, ParkedJobs

log = logging.getLogger("strata.jobs")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to, for tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._now = instant


class JobStore(Protocol):
    """The jobs of one event store (`eventlog.postgres_recorder`, `eventlog.sqlite_recorder`)."""

    def claim_due_jobs(self, kind: str, now: datetime, limit: int, lease: timedelta) -> list[Job]:
        """Up to `limit` jobs of `kind` due at `now`, earliest first, each with its attempts
        counted, a new fence, and hidden from other claims until `now + lease`."""

    def reschedule_job(self, kind: str, key: str, due_at: datetime, fence: int) -> None:
        """Make the job due at `due_at`, only if it still has `fence` (this claim's: a poller
        whose lease lapsed must not move the due time of another's claim)."""

    def drop_job(self, kind: str, key: str, fence: int | None = None) -> None:
        """Delete the job; with `fence`, only if it still has it (not replaced, retried or
        claimed again)."""

    def next_due(self, kind: str) -> datetime | None:
        """When the earliest job of `kind` is due (claimed ones: when their lease ends)."""

    def extend_leases(self, kind: str, claims: Mapping[str, int], until: datetime) -> None:
        """Hide the claimed jobs (key -> fence of the claim) from other claims until `until`;
        a job without that fence any more (done, replaced, claimed again) is left as it is."""

    def park_job(self, kind: str, key: str, fence: int, reason: str, at: datetime) -> bool:
        """Keep the job, never to be claimed again, with why and when; only if it still has
        `fence` (this claim's). Whether it was parked. Writing a job of the same key replaces
        it (unparked); `eventlog.parked_jobs` lists and retries parked jobs."""


class JobTable(JobStore, ParkedJobs, Protocol):
    """A recorder's jobs table: the pollers' side and the operators'."""


class RecorderJobs:
    """The `JobStore` and `ParkedJobs` methods of a recorder, answered by its jobs table."""

    jobs: JobTable

    def claim_due_jobs(self, kind: str, now: datetime, limit: int, lease: timedelta) -> list[Job]:
        return self.jobs.claim_due_jobs(kind, now, limit, lease)

    def reschedule_job(self, kind: str, key: str, due_at: datetime, fence: int) -> None:
        self.jobs.reschedule_job(kind, key, due_at, fence)

    def drop_job(self, kind: str, key: str, fence: int | None = None) -> None:
        self.jobs.drop_job(kind, key, fence)

    def next_due(self, kind: str) -> datetime | None:
        return self.jobs.next_due(kind)

    def extend_leases(self, kind: str, claims: Mapping[str, int], until: datetime) -> None:
        self.jobs.extend_leases(kind, claims, until)

    def park_job(self, kind: str, key: str, fence: int, reason: str, at: datetime) -> bool:
        return self.jobs.park_job(kind, key, fence, reason, at)

    def parked_jobs(self, kind: str | None = None, limit: int = 100) -> list[ParkedJob]:
        return self.jobs.parked_jobs(kind, limit)

    def retry_parked_jobs(self, kind: str, key: str | None, now: datetime) -> list[str]:
        return self.jobs.retry_parked_jobs(kind, key, now)

    def parked_job_counts(self) -> dict[str, int]:
        return self.jobs.parked_job_counts()


class RetryLater(Exception):
    """Raised by a handler whose job cannot be done yet: rescheduled, logged without a
    traceback, after `delay` or else the poller's backoff."""

    def __init__(self, reason: str, delay: timedelta | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class JobFailed(Exception):
    """Raised by a handler whose job no retry can do (a provider refused the request as
    malformed or impossible): the job is parked at once with `reason`, without a traceback."""


@dataclass(frozen=True)
class Backoff:
    """Exponential: `first` after the first attempt, doubling up to `cap`, each delay drawn
    from [1 - jitter, 1] times that, so failed jobs do not all come back at once."""

    first: timedelta = timedelta(seconds=1)
    cap: timedelta = timedelta(minutes=5)
    jitter: float = 0.5

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        exponent = min(max(attempts - 1, 0), 64)  # beyond that the cap applies anyway
        seconds = min(self.cap.total_seconds(), self.first.total_seconds() * 2.0**exponent)
        return timedelta(seconds=seconds * rng.uniform(1 - self.jitter, 1))


Handler = Callable[[Job], None]

LEASE = timedelta(seconds=10)
"""How long a claim hides a job from other claims unless renewed: how late a job whose process
died runs again, at most."""

MAX_ATTEMPTS = 10
"""Attempts of a job whose handler keeps raising an unexpected error before it is parked. With
the default backoff the tenth comes 4 to 8 minutes after the first: far past a blip (the
expected transient failures, `RetryLater` and store outages, are never counted against it),
while a bug that fails every attempt stops being run and logged every 5 minutes forever."""

REASON_LENGTH = 500
"""The most characters of an error kept as a parked job's reason."""

MIN_PAUSE = 0.01
"""Seconds between claims when a due job could not be claimed (another poller is taking it)."""


class JobPoller:
    """Runs the due jobs of one kind from one store, in a thread of its own: each claimed batch
    `concurrency` jobs at a time (a job mostly waits on a provider or another service, and jobs
    are claimed under leases exactly so that several pollers may run them at once)."""

    def __init__(
        self,
        store: JobStore,
        kind: str,
        handle: Handler,
        *,
        clock: Clock | None = None,
        batch: int = 16,
        concurrency: int = 1,
        lease: timedelta = LEASE,
        backoff: Backoff = Backoff(),
        max_attempts: int = MAX_ATTEMPTS,
        max_wait: float = 1.0,
        max_outage_pause: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.kind = kind
        self._store = store
        self._handle = handle
        self._clock = clock or SystemClock()
        self._batch = batch
        self._lease = lease
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._max_outage_pause = max_outage_pause
        self._rng = rng or random.Random()
        self._woken = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"jobs-{kind}", daemon=True)
        self._held: dict[str, int] = {}
        """The claims in hand (key -> fence), whose leases the renewer extends."""
        self._held_lock = threading.Lock()
        self._renewer = threading.Thread(
            target=self._renew_leases, name=f"jobs-{kind}-leases", daemon=True
        )
        self._runners = (
            ThreadPoolExecutor(concurrency, thread_name_prefix=f"jobs-{kind}")
            if concurrency > 1
            else None
        )

    def start(self) -> "JobPoller":
        self._thread.start()
        self._renewer.start()
        return self

    def wake(self) -> None:
        """Claim at once (a job may just have been written)."""
        self._woken.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the job in hand, if any."""
        self._stopping.set()
        self._woken.set()
        for thread in (self._thread, self._renewer):
            if thread.is_alive():
                thread.join(timeout)
        if self._runners is not None:
            self._runners.shutdown(wait=False, cancel_futures=True)

    def run_once(self) -> int:
        """Claim the jobs due now (at most a batch) and run them; how many were claimed."""
        jobs = self._store.claim_due_jobs(self.kind, self._clock.now(), self._batch, self._lease)
        with self._held_lock:
            self._held.update((job.key, job.fence) for job in jobs)
        if self._runners is None or len(jobs) < 2:
            for job in jobs:
                self._run_unless_stopping(job)
        else:
            for _ in self._runners.map(self._run_unless_stopping, jobs):
                pass
        return len(jobs)

    def _run_unless_stopping(self, job: Job) -> None:
        if self._stopping.is_set():  # hand the rest back rather than hold them a lease long
            self._let_go(job)
            self._store.reschedule_job(job.kind, job.key, job.due_at, job.fence)
        else:
            self._run(job)

    def _run(self, job: Job) -> None:
        try:
            self._handle(job)
        except RetryLater as later:
            self._retry_later(job, str(later), later.delay)
        except STORE_OUTAGES as outage:  # retried however long it lasts, never parked
            self._retry_later(job, f"store unavailable: {reason_of(outage)}", None)
        except JobFailed as failed:
            self._park(job, reason_of(failed))
        except Exception as error:  # noqa: BLE001 - a bug, or unforeseen: counted, then parked
            self._failed(job, error)
        else:
            self._let_go(job)
            self._store.drop_job(job.kind, job.key, fence=job.fence)

    def _retry_later(self, job: Job, reason: str, delay: timedelta | None) -> None:
        delay = delay if delay is not None else self._delay(job)
        log.warning("job %s %s not done yet: %s; again in %s", job.kind, job.key, reason, delay)
        self._let_go(job)
        self._reschedule(job, delay)

    def _failed(self, job: Job, error: Exception) -> None:
        reason = f"{type(error).__name__}: {reason_of(error)}"
        if job.attempts >= self._max_attempts:
            self._park(job, reason, error)
            return
        delay = self._delay(job)
        log.warning(
            "job %s %s failed (attempt %d of %d): %s; again in %s",
            job.kind,
            job.key,
            job.attempts,
            self._max_attempts,
            reason,
            delay,
        )
        self._let_go(job)
        self._reschedule(job, delay)

    def _park(self, job: Job, reason: str, error: Exception | None = None) -> None:
        """Park the job and say so once, at ERROR (with the traceback of an unexpected error)."""
        self._let_go(job)
        if self._store.park_job(job.kind, job.key, job.fence, reason, self._clock.now()):
            log.error(
                "job %s %s parked after %d attempts: %s",
                job.kind,
                job.key,
                job.attempts,
                reason,
                exc_info=error,
                extra={"job_kind": job.kind, "job_key": job.key, "reason": reason},
            )
        else:
            log.warning("job %s %s not parked: replaced or claimed again", job.kind, job.key)

    def _let_go(self, job: Job) -> None:
        """Stop renewing the job's lease, before its due time is written: a renewal never
        comes after that write (the renewer holds the lock while it writes)."""
        with self._held_lock:
            if self._held.get(job.key) == job.fence:
                del self._held[job.key]

    def _renew_leases(self) -> None:
        while not self._stopping.wait(self._lease.total_seconds() / 3):
            with self._held_lock:
                if not self._held:
                    continue
                try:
                    until = self._clock.now() + self._lease
                    self._store.extend_leases(self.kind, dict(self._held), until)
                except Exception as error:  # noqa: BLE001 - logged; the next round tries again
                    log.warning("jobs %s: cannot renew the leases: %s", self.kind, error)

    def _delay(self, job: Job) -> timedelta:
        return self._backoff.delay(job.attempts, self._rng)

    def _reschedule(self, job: Job, delay: timedelta) -> None:
        self._store.reschedule_job(job.kind, job.key, self._clock.now() + delay, job.fence)

    def _loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._woken.clear()
            try:
                claimed = self.run_once()
                pause = 0.0 if claimed >= self._batch else self._until_next_due()
                failures = 0
            except Exception as error:  # noqa: BLE001 - logged; the poller outlives outages
                failures += 1
                pause = min(self._max_outage_pause, self._max_wait * 2**failures)
                log.warning("jobs %s: %s; again in %g s", self.kind, error, pause)
            self._woken.wait(pause)

    def _until_next_due(self) -> float:
        due = self._store.next_due(self.kind)
        if due is None:
            return self._max_wait
        seconds = (due - self._clock.now()).total_seconds()
        return min(self._max_wait, max(MIN_PAUSE, seconds))


def reason_of(error: BaseException) -> str:
    """The error's first line (its type if it has no text), at most `REASON_LENGTH` long."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:REASON_LENGTH]
