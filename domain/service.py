"""The command-handling base shared by every context's application class.

A command runs as: replay its idempotency record if it has one; load the aggregate; check the
client's expected version; decide; commit the new events with their side records in one
transaction. A lost optimistic-concurrency race is retried with a fresh aggregate, unless the
client pinned a version (If-Match), in which case it is told the version moved. Commands on one
aggregate inside one process queue behind each other, so optimistic retries are left for races
between processes and cannot run out under a burst of local ones.

After a commit that brings an aggregate to a multiple of the snapshot interval, the service
snapshots it, so "state as of T" folds at most one interval of events (`state_at`).
"""

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    InfrastructureFactory,
    JSONTranscoder,
    RecordConflictError,
    Recording,
    Transcoding,
)
from eventsourcing.utils import Environment, EnvType

from domain.commands import (
    ANY_EXISTING_VERSION,
    ClaimChanges,
    CommandContext,
    CommandResult,
    Decision,
    ExpectedVersions,
)
from domain.errors import (
    AggregateNotFound,
    IdempotencyKeyReused,
    InvalidValue,
    NoSuchVersion,
    NotFoundAtTime,
    StaleVersion,
    TooMuchContention,
    ValueTaken,
)
from domain.keyed_locks import KeyedLocks
from domain.ports import (
    Committer,
    EventMetadata,
    IdempotencyRecord,
    JobChanges,
    ReplicaReader,
    SideRecords,
    SideRecordStore,
    UnitOfWork,
)

A = TypeVar("A", bound=Aggregate)
__all__ = [
    "ANY_EXISTING_VERSION",
    "DEFAULT_SNAPSHOT_INTERVAL",
    "ClaimChanges",
    "CommandContext",
    "CommandResult",
    "CommandService",
    "Decision",
    "ExpectedVersions",
]

DEFAULT_SNAPSHOT_INTERVAL = 100
log = logging.getLogger("strata.domain")


def fast_fold(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's fold without its per-event runtime-protocol assert (half the fold time)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class DirectCommitter:
    """Commits each unit of work in a transaction of its own."""

    def __init__(self, app: "CommandService") -> None:
        self._app = app

    def commit(self, unit: UnitOfWork) -> list[Recording[Any]]:
        return self._app.save_events(unit.events, side_records=unit.side_records)


class CommandService(Application[UUID]):
    """An event-sourced application whose public methods are the context's commands."""

    max_attempts: ClassVar[int] = 30
    max_backoff_seconds: ClassVar[float] = 0.02
    transcodings: ClassVar[tuple[Transcoding, ...]] = ()
    """The value types the context's events hold beyond JSON's (e.g. enums, value objects)."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
    ) -> None:
        if snapshot_interval < 0:
            raise ValueError(f"snapshot_interval must be 0 (off) or more, got {snapshot_interval}")
        self.snapshot_interval = snapshot_interval
        """Snapshot an aggregate each time its version reaches a multiple of this (0: never)."""
        try:
            super().__init__(env)
        except Exception:  # its store unreachable, say: its connections are not left retrying
            if "factory" in vars(self):
                self.factory.close()
            raise
        self.committer: Committer = DirectCommitter(self)
        self.commit_listeners: list[Callable[[str], None]] = []
        """Called with the service's name after each commit (e.g. to wake a log tailer)."""
        self._aggregate_locks = KeyedLocks()
        self.replica_refreshers: dict[str, Callable[[], object]] = {}
        """Per followed context whose log this process can read: catch its replica up."""

    def save_events(
        self, events: Sequence[Aggregate.Event], **kwargs: Any
    ) -> list[Recording[UUID]]:
        """`save(*events, **kwargs)` for events already collected, as the committers hold them,
        without the runtime-protocol check `save` makes of each (8.6 µs an event on Python
        3.11, about 1 % of a register); the rest is `save`'s own steps."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        processing_event.events.extend(events)
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)
        return recordings

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        for transcoding in self.transcodings:
            transcoder.register(transcoding)

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """The snapshot store exists exactly when the interval is not 0, whatever the env says."""
        environment = super().construct_env(name, env)
        enabled = "y" if self.snapshot_interval else "n"
        for key in environment.create_keys(InfrastructureFactory.IS_SNAPSHOTTING_ENABLED):
            environment[key] = enabled
        return environment

    @property
    def side_records(self) -> SideRecordStore:
        return cast(SideRecordStore, self.recorder)

    def replica_state(self, upstream: str, aggregate_id: UUID) -> Mapping[str, Any] | None:
        """What this context's replica knows of another context's aggregate, first caught up if
        this process can read the upstream's log; else as the replica's feed has brought it."""
        refresh = self.replica_refreshers.get(upstream)
        if refresh is not None:
            refresh()
        return cast(ReplicaReader, self.recorder).replica_state(upstream, aggregate_id)

    def state_at(
        self,
        aggregate_type: type[A],
        aggregate_id: UUID,
        *,
        at: datetime | None = None,
        version: int | None = None,
    ) -> A:
        """The aggregate as it was at instant `at`, or at `version` (give exactly one).

        As of `at`, it is the fold of exactly its events with timestamp <= `at`. Timestamps
        increase with the version, so the time index turns `at` into the last such version, and
        the repository folds from the nearest snapshot at or before that version: a snapshot's
        own timestamp (when it was taken) never enters the cut-off.
        """
        if (at is None) == (version is None):
            raise ValueError("state_at takes exactly one of `at` and `version`")
        label = aggregate_type.__name__
        if at is not None:
            version = self._version_at(label, aggregate_id, at)
        elif version is not None and version < 1:
            raise InvalidValue(f"a version is 1 or more, got {version}")
        try:
            aggregate = self.repository.get(aggregate_id, version=version, projector_func=fast_fold)
        except AggregateNotFoundError:
            aggregate = None
        if not isinstance(aggregate, aggregate_type):
            raise AggregateNotFound(f"no {label} with id {aggregate_id}")
        if aggregate.version != version:
            latest = aggregate.version
            raise NoSuchVersion(
                f"{label} {aggregate_id} has no version {version}; its latest is {latest}"
            )
        return aggregate

    def _version_at(self, label: str, aggregate_id: UUID, at: datetime) -> int:
        if at.tzinfo is None:
            raise InvalidValue(f"the instant {at.isoformat()} has no time zone")
        version = self.side_records.version_at(aggregate_id, at)
        if version is not None:
            return version
        first = self.side_records.metadata_of(aggregate_id, 1)
        if first is None:
            raise AggregateNotFound(f"no {label} with id {aggregate_id}")
        raise NotFoundAtTime(f"{label} {aggregate_id}", at, first.timestamp)

    def load(self, aggregate_type: type[A], aggregate_id: UUID) -> A:
        aggregate: Aggregate | None
        try:
            aggregate = self.repository.get(aggregate_id, projector_func=fast_fold)
        except AggregateNotFoundError:
            aggregate = None
        if not isinstance(aggregate, aggregate_type):
            label = aggregate_type.__name__
            raise AggregateNotFound(f"no {label} with id {aggregate_id}")
        return aggregate

    def create(self, ctx: CommandContext, decide: Callable[[], Decision]) -> CommandResult:
        """Create a new aggregate: no expected version can hold for it, not even "any"."""

        def decide_new() -> Decision:
            if ctx.expected_versions is not None:
                raise StaleVersion(
                    f"the aggregate to create does not exist yet, so it is not at"
                    f" {ctx.expected_versions}"
                )
            return decide()

        return self._run(ctx, decide_new)

    def update(
        self,
        ctx: CommandContext,
        aggregate_type: type[A],
        aggregate_id: UUID,
        change: Callable[[A], ClaimChanges | None],
    ) -> CommandResult:
        """Load, check the expected version, apply `change` (which may change claims)."""

        def decide() -> Decision:
            aggregate = self.load(aggregate_type, aggregate_id)
            expected = ctx.expected_versions
            if expected is not None and not expected.admit(aggregate.version):
                raise StaleVersion(
                    f"{aggregate_type.__name__} {aggregate_id} is at version "
                    f"{aggregate.version}, not at {expected}"
                )
            claims = change(aggregate)
            return Decision(aggregate, claims=claims or ClaimChanges())

        with self._aggregate_locks.hold(aggregate_id):
            return self._run(ctx, decide)

    def _run(self, ctx: CommandContext, decide: Callable[[], Decision]) -> CommandResult:
        replayed = self._replay(ctx)
        if replayed is not None:
            return replayed
        for attempt in range(self.max_attempts):
            decision = decide()
            try:
                return self._commit(ctx, decision)
            except RecordConflictError:
                replayed = self._replay(ctx)
                if replayed is not None:
                    return replayed
                self._explain_conflict(ctx, decision)
                self._back_off(attempt)
        raise TooMuchContention(
            f"gave up after {self.max_attempts} concurrent modifications; retry later"
        )

    def _commit(self, ctx: CommandContext, decision: Decision) -> CommandResult:
        aggregate = decision.aggregate
        events = cast("list[Aggregate.Event]", aggregate.collect_events())
        if not events and ctx.idempotency_key is None:
            position = self.side_records.position_of(aggregate.id, aggregate.version)
            return CommandResult(aggregate.id, aggregate.version, position or 0)
        jobs = self.job_changes(aggregate, events)
        side_records = SideRecords(
            idempotency=self._idempotency_records(ctx, aggregate),
            jobs=jobs.start,
            done_jobs=jobs.finish,
            claims=decision.claims.take,
            released_claims=decision.claims.release,
            event_metadata=[
                EventMetadata(
                    e.originator_id,
                    e.originator_version,
                    e.timestamp,
                    ctx.correlation_id,
                    ctx.causation_id,
                )
                for e in events
            ],
        )
        recordings = self.committer.commit(UnitOfWork(events, side_records))
        self._snapshot_if_due(aggregate, events)
        for listener in self.commit_listeners:
            listener(self.name)
        if recordings:
            position = recordings[-1].notification.id
        else:
            position = self.side_records.position_of(aggregate.id, aggregate.version) or 0
        return CommandResult(aggregate.id, aggregate.version, position)

    def job_changes(self, aggregate: Aggregate, events: Sequence[Aggregate.Event]) -> JobChanges:
        """The durable jobs these new events start and finish, committed with them (a context
        whose commands are carried out later, by a job poller, says which)."""
        return JobChanges()

    def _snapshot_if_due(self, aggregate: Aggregate, events: Sequence[Aggregate.Event]) -> None:
        """Snapshot the just-committed aggregate if one of its new versions is due.

        The aggregate in hand is exactly at its last committed version. If a command's events
        pass a multiple of the interval without ending on it, the snapshot is taken at the last
        version instead, which bounds the fold just as well. The events are committed already,
        and a snapshot only saves work: whatever makes it fail is logged, and the command still
        succeeds (replay then folds from an earlier snapshot).
        """
        interval = self.snapshot_interval
        if self.snapshots is None or not interval:
            return
        if not any(event.originator_version % interval == 0 for event in events):
            return
        try:
            self.snapshots.put([type(aggregate).Snapshot.take(aggregate)])
        except Exception:  # the command is committed; see above
            log.exception("snapshot of %s at version %d failed", aggregate.id, aggregate.version)

    @staticmethod
    def _idempotency_records(ctx: CommandContext, aggregate: Aggregate) -> list[IdempotencyRecord]:
        key = ctx.recorded_key
        if key is None:
            return []
        return [IdempotencyRecord(key, ctx.fingerprint, aggregate.id, aggregate.version)]

    def _replay(self, ctx: CommandContext) -> CommandResult | None:
        key = ctx.recorded_key
        if key is None:
            return None
        record = self.side_records.find_idempotency_record(key)
        if record is None:
            return None
        if record.fingerprint != ctx.fingerprint:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {ctx.idempotency_key!r} was already used for a different request"
            )
        position = self.side_records.position_of(record.aggregate_id, record.version) or 0
        return CommandResult(record.aggregate_id, record.version, position, replayed=True)

    def _explain_conflict(self, ctx: CommandContext, decision: Decision) -> None:
        """Turn a conflict into the domain error it stands for, if it is not a plain race."""
        for claim in decision.claims.take:
            owner = self.side_records.claim_owner(claim.scope, claim.value)
            if owner is not None and owner != claim.owner_id:
                raise ValueTaken(f"{claim.scope} {claim.value!r} is already in use")
        expected = ctx.expected_versions
        if expected is not None and not expected.any_existing:
            aggregate = decision.aggregate
            raise StaleVersion(
                f"{type(aggregate).__name__} {aggregate.id} was changed concurrently; "
                f"it is no longer at {expected}"
            )

    def _back_off(self, attempt: int) -> None:
        time.sleep(random.uniform(0, min(self.max_backoff_seconds, 0.001 * 2**attempt)))
