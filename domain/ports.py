"""What the command handlers need from the outside, as small protocols.

The event store's recorder (in the backbone) implements :class:`SideRecordStore`; the composition
root may replace the default committer with a group committer.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Recording


@dataclass(frozen=True)
class IdempotencyRecord:
    """What a command with an Idempotency-Key did, stored in the transaction of its events."""

    key: str
    fingerprint: str
    aggregate_id: UUID
    version: int


@dataclass(frozen=True)
class Claim:
    """A value that at most one aggregate may hold, e.g. ("email", "ada@example.com")."""

    scope: str
    value: str
    owner_id: UUID


@dataclass(frozen=True)
class EventMetadata:
    """What the store keeps beside each event: its time (indexed, for "state as of T") and the
    ids tying it to the request that caused it."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    correlation_id: str | None = None
    causation_id: str | None = None


@dataclass(frozen=True)
class Job:
    """Work due at a time (a call to a provider, a deadline), kept until it is done.

    Written with the events that make it due, so neither exists without the other; a poller
    (`eventlog.jobs`) runs it when due. Writing a job of the same (kind, key) again replaces it.
    """

    kind: str
    key: str
    due_at: datetime
    """Timezone-aware UTC."""
    payload: Mapping[str, Any] = field(default_factory=dict)
    """JSON: strings, numbers, booleans, None, lists and mappings of them."""
    attempts: int = 0
    fence: int = 0
    """Set by the store on a claimed job: the claim's token. A poller may move, drop or park
    the job only while the store's row still holds it (no claim, retry or rewrite since)."""


JobKey = tuple[str, str]


@dataclass(frozen=True)
class JobChanges:
    """The jobs a command's new events start, and the (kind, key) of those they finish."""

    start: Sequence[Job] = ()
    finish: Sequence[JobKey] = ()


"""(kind, key) of a job."""


@dataclass(frozen=True)
class Tracking:
    """How far a process has taken in an upstream's log, moved with the events it caused.

    The move is conditional: it applies only while the tracked position is still `after` (the
    position the process read before taking the page in), so of two processors of one page
    only the first commits; the other's transaction fails with a conflict, events and all.
    """

    upstream: str
    position: int
    stream_seq: int = 0
    after: int = 0
    """The tracked position this move starts from; 0 when nothing was tracked yet."""


@dataclass(frozen=True)
class SideRecords:
    """Rows written in the same transaction as a save's events, so no crash can separate them.

    Of the jobs, `done_jobs` are deleted before `jobs` are written, so a save may finish a job
    and schedule one of the same key anew.
    """

    idempotency: Sequence[IdempotencyRecord] = ()
    claims: Sequence[Claim] = ()
    released_claims: Sequence[Claim] = ()
    event_metadata: Sequence[EventMetadata] = ()
    jobs: Sequence[Job] = ()
    done_jobs: Sequence[JobKey] = ()
    tracking: Sequence[Tracking] = ()

    @classmethod
    def combined(cls, parts: Sequence["SideRecords"]) -> "SideRecords":
        """The records of several saves as one save's, with the same effect in their order."""
        jobs, done_jobs = _combined_jobs(parts)
        return cls(
            idempotency=[r for part in parts for r in part.idempotency],
            claims=[c for part in parts for c in part.claims],
            released_claims=[c for part in parts for c in part.released_claims],
            event_metadata=[t for part in parts for t in part.event_metadata],
            jobs=jobs,
            done_jobs=done_jobs,
            tracking=[t for part in parts for t in part.tracking],
        )


def _combined_jobs(parts: Sequence[SideRecords]) -> tuple[list[Job], list[JobKey]]:
    """A job finished by a later part is not written; one written by a later part is."""
    jobs: dict[JobKey, Job] = {}
    done: dict[JobKey, None] = {}
    for part in parts:
        for key in part.done_jobs:
            jobs.pop(key, None)
            done[key] = None
        for job in part.jobs:
            jobs[job.kind, job.key] = job
    return list(jobs.values()), list(done)


@dataclass(frozen=True)
class UnitOfWork:
    """The new events of one command, with the side records to store alongside."""

    events: Sequence[Aggregate.Event]
    side_records: SideRecords = field(default_factory=SideRecords)


class Committer(Protocol):
    """Stores a unit of work atomically; raises RecordConflictError if any row conflicts."""

    def commit(self, unit: UnitOfWork) -> list[Recording[Any]]: ...


class SideRecordStore(Protocol):
    """Lookups over the side records and the events table of one event store."""

    def ping(self) -> None: ...

    def find_idempotency_record(self, key: str) -> IdempotencyRecord | None: ...

    def claim_owner(self, scope: str, value: str) -> UUID | None: ...

    def claimed(self, scope: str) -> list[str]:
        """The values claimed in a scope, in order."""

    def position_of(self, originator_id: UUID, originator_version: int) -> int | None: ...

    def version_at(self, originator_id: UUID, timestamp: datetime) -> int | None: ...

    def metadata_of(self, originator_id: UUID, originator_version: int) -> EventMetadata | None: ...


class ReplicaReader(Protocol):
    """A context's local copy of what it needs of another context's aggregates."""

    def replica_state(self, upstream: str, aggregate_id: UUID) -> Mapping[str, Any] | None: ...
