"""Parked jobs: jobs a poller gave up on (`eventlog.jobs.JobFailed`, or too many unexpected
failures), kept in the jobs table with why and when, never claimed again until an operator
retries them (`replay jobs list | retry`).

A retry makes the job due at once with its attempts back at 0, as writing the job anew would:
it gets the poller's whole budget of attempts again. Its fence (`domain.ports.Job.fence`) moves
on, as at every claim and rewrite, so no poller that held the job before can touch it. A
commit that writes a job of the same key replaces a parked one (a new intent), and one that
finishes it (`SideRecords.done_jobs`) deletes it, parked or not.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class ParkedJob:
    kind: str
    key: str
    attempts: int
    """The attempts made before it was parked."""
    parked_at: datetime
    reason: str
    """The one-line error that parked it."""
    payload: Any

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "attempts": self.attempts,
            "parked_at": self.parked_at.isoformat(),
            "reason": self.reason,
            "payload": self.payload,
        }


class ParkedJobs(Protocol):
    """The parked jobs of one event store (its recorder, `eventlog.jobs.RecorderJobs`)."""

    def parked_jobs(self, kind: str | None = None, limit: int = 100) -> list[ParkedJob]:
        """The parked jobs (of `kind`, or all), the earliest parked first."""

    def retry_parked_jobs(self, kind: str, key: str | None, now: datetime) -> list[str]:
        """Unpark the job of `kind` and `key` (every parked one of `kind` if `key` is None):
        due at `now`, attempts back at 0, a new fence. The keys of those unparked."""

    def parked_job_counts(self) -> dict[str, int]:
        """Kind -> how many jobs of it are parked (kinds with none are left out)."""
