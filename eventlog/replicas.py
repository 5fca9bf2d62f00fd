"""A context's replica of what it needs from another context, fed by that context's events.

A context that follows another (orders follows users) declares a `Replica`: the upstream
context and `state_after`, which names the events that matter and the whole state each one
leaves its aggregate in. The replica lives in the follower's own event-store database:

- one row per upstream aggregate: its state and the upstream version that set it. A change
  lands only over an older version, so duplicates and late redeliveries change nothing;
- one checkpoint per upstream: the last position taken in (and the stream sequence it came
  at), written in the same transaction as the rows, so the intake is exactly-once in effect.

Feeds (`eventlog.replica_feeds`) bring the upstream's envelopes in log order: from JetStream
when the upstream runs elsewhere, from its store when this process can read it. They hand them
to an `Intake`: a replica's is `ReplicaIntake`; a process that reacts to an upstream's events
with events of its own has one that commits them with a `Tracking` side record instead.

An intake names the kinds of events it needs (`Intake.kinds`); a feed that reads the upstream's
store brings it those alone, with the position its read reached beyond them, to which the
checkpoint moves all the same (`eventlog.log_pages`). A feed may bring others: the intake
ignores them.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from domain.ports import Tracking
from eventlog.envelope import EventEnvelope
from eventlog.log_pages import Kinds

StateAfter = Callable[[str, str, Mapping[str, Any]], Mapping[str, Any] | None]
"""(aggregate type, event type, data) -> the aggregate's whole replicated state after the
event, or None for an event that changes nothing the follower keeps."""


@dataclass(frozen=True)
class Replica:
    upstream: str
    state_after: StateAfter
    kinds: Kinds = None
    """The kinds of events for which `state_after` may return a state (None: any)."""


@dataclass(frozen=True)
class ReplicaChange:
    aggregate_id: UUID
    version: int
    state: Mapping[str, Any]


@dataclass(frozen=True)
class ReplicaCheckpoint:
    position: int = 0
    stream_seq: int = 0


class TrackingConflict(RecordConflictError):
    """A tracked position was no longer where a commit's tracking started from: another
    processor took the page in first. Nothing of the commit was written."""

    def __init__(self, tracking: Tracking) -> None:
        super().__init__(
            f"the tracked position of {tracking.upstream} is no longer {tracking.after}"
        )
        self.tracking = tracking


class Intake(Protocol):
    """Takes in pages of an upstream's log, exactly once in effect, and says how far it got."""

    @property
    def upstream(self) -> str: ...

    @property
    def kinds(self) -> Kinds:
        """The kinds of the upstream's events it needs (None: every kind)."""

    def checkpoint(self) -> ReplicaCheckpoint:
        """The last position (and stream sequence) taken in."""

    def take_in(
        self, envelopes: Sequence[EventEnvelope], stream_seq: int = 0, *, reached: int = 0
    ) -> ReplicaCheckpoint | None:
        """Take in a page (in log order; it may repeat what is held) and move the checkpoint
        to its end (`page_end`: `reached`, the position its read reached, when that is beyond
        the page's last event); the new checkpoint, or None for an empty page that reached no
        position. May raise a RecordConflictError if another processor of the same upstream
        moved first: the page is then to be read again from the checkpoint."""


def page_end(envelopes: Sequence[EventEnvelope], reached: int = 0) -> int:
    """Where a page takes its intake's checkpoint: its last event's position, or the position
    its read reached beyond it (0: an empty page that reached nothing)."""
    return max(reached, envelopes[-1].position) if envelopes else reached


class ReplicaStore(Protocol):
    """The follower's recorder (`eventlog.postgres_recorder`, `eventlog.sqlite_recorder`)."""

    def apply_replica_changes(
        self,
        upstream: str,
        changes: Sequence[ReplicaChange],
        checkpoint: ReplicaCheckpoint,
    ) -> None:
        """In one transaction: each change over an older version, and the checkpoint moved
        forward (never back)."""

    def replica_checkpoint(self, upstream: str) -> ReplicaCheckpoint: ...

    def replica_state(self, upstream: str, aggregate_id: UUID) -> Mapping[str, Any] | None: ...


def changes_of(replica: Replica, envelopes: Sequence[EventEnvelope]) -> list[ReplicaChange]:
    """The changes a page of the upstream's events makes, the latest per aggregate."""
    latest: dict[UUID, ReplicaChange] = {}
    for envelope in envelopes:
        state = replica.state_after(envelope.aggregate_type, envelope.event_type, envelope.data)
        if state is None:
            continue
        known = latest.get(envelope.aggregate_id)
        if known is None or known.version < envelope.aggregate_version:
            latest[envelope.aggregate_id] = ReplicaChange(
                envelope.aggregate_id, envelope.aggregate_version, state
            )
    return list(latest.values())


def take_in(
    store: ReplicaStore,
    replica: Replica,
    envelopes: Sequence[EventEnvelope],
    *,
    stream_seq: int = 0,
    reached: int = 0,
) -> ReplicaCheckpoint | None:
    """Apply a page of the upstream's log (in log order) and move the checkpoint to its end
    (`page_end`); the new checkpoint, or None for an empty page that reached nothing."""
    end = page_end(envelopes, reached)
    if not end:
        return None
    checkpoint = ReplicaCheckpoint(end, stream_seq)
    store.apply_replica_changes(replica.upstream, changes_of(replica, envelopes), checkpoint)
    return checkpoint


class ReplicaIntake:
    """The intake of a replica into the follower's store."""

    def __init__(self, store: ReplicaStore, replica: Replica) -> None:
        self._store = store
        self._replica = replica

    @property
    def upstream(self) -> str:
        return self._replica.upstream

    @property
    def kinds(self) -> Kinds:
        return self._replica.kinds

    def checkpoint(self) -> ReplicaCheckpoint:
        return self._store.replica_checkpoint(self.upstream)

    def take_in(
        self, envelopes: Sequence[EventEnvelope], stream_seq: int = 0, *, reached: int = 0
    ) -> ReplicaCheckpoint | None:
        return take_in(
            self._store, self._replica, envelopes, stream_seq=stream_seq, reached=reached
        )


class ReplicaTables(Protocol):
    """A store's replica tables (`eventlog.postgres_replicas`, `eventlog.sqlite_replicas`)."""

    def apply(
        self, upstream: str, changes: Sequence[ReplicaChange], checkpoint: ReplicaCheckpoint
    ) -> None: ...

    def checkpoint(self, upstream: str) -> ReplicaCheckpoint: ...

    def state(self, upstream: str, aggregate_id: UUID) -> Mapping[str, Any] | None: ...


class RecorderReplicas:
    """The `ReplicaStore` methods of a recorder, answered by its replica tables (`_replicas`)."""

    _replicas: ReplicaTables

    def apply_replica_changes(
        self, upstream: str, changes: Sequence[ReplicaChange], checkpoint: ReplicaCheckpoint
    ) -> None:
        self._replicas.apply(upstream, changes, checkpoint)

    def replica_checkpoint(self, upstream: str) -> ReplicaCheckpoint:
        return self._replicas.checkpoint(upstream)

    def replica_state(self, upstream: str, aggregate_id: UUID) -> Mapping[str, Any] | None:
        return self._replicas.state(upstream, aggregate_id)
