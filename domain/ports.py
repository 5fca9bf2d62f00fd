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
class SideRecords:
    """Rows written in the same transaction as a save's events, so no crash can separate them."""

    idempotency: Sequence[IdempotencyRecord] = ()
    claims: Sequence[Claim] = ()
    released_claims: Sequence[Claim] = ()
    event_metadata: Sequence[EventMetadata] = ()

    @classmethod
    def combined(cls, parts: Sequence["SideRecords"]) -> "SideRecords":
        return cls(
            idempotency=[r for part in parts for r in part.idempotency],
            claims=[c for part in parts for c in part.claims],
            released_claims=[c for part in parts for c in part.released_claims],
            event_metadata=[t for part in parts for t in part.event_metadata],
        )


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

    def position_of(self, originator_id: UUID, originator_version: int) -> int | None: ...

    def version_at(self, originator_id: UUID, timestamp: datetime) -> int | None: ...

    def metadata_of(self, originator_id: UUID, originator_version: int) -> EventMetadata | None: ...


class ReplicaReader(Protocol):
    """A context's local copy of what it needs of another context's aggregates."""

    def replica_state(self, upstream: str, aggregate_id: UUID) -> Mapping[str, Any] | None: ...
