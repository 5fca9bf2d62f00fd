"""The command-handling base shared by every context's application class.

A command runs as: replay its idempotency record if it has one; load the aggregate; check the
client's expected version; decide; commit the new events with their side records in one
transaction. A lost optimistic-concurrency race is retried with a fresh aggregate, unless the
client pinned a version (If-Match), in which case it is told the version moved.
"""

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError, Recording

from domain.errors import (
    AggregateNotFound,
    IdempotencyKeyReused,
    StaleVersion,
    TooMuchContention,
    ValueTaken,
)
from domain.ports import (
    Claim,
    Committer,
    EventMetadata,
    IdempotencyRecord,
    SideRecords,
    SideRecordStore,
    UnitOfWork,
)

A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class CommandContext:
    """What the caller says about a command besides its arguments."""

    idempotency_key: str | None = None
    fingerprint: str = ""
    expected_version: int | None = None
    correlation_id: str | None = None
    causation_id: str | None = None


@dataclass(frozen=True)
class CommandResult:
    id: UUID
    version: int
    position: int
    replayed: bool = False


@dataclass(frozen=True)
class ClaimChanges:
    """The unique values a command takes and gives up."""

    take: Sequence[Claim] = ()
    release: Sequence[Claim] = ()


@dataclass(frozen=True)
class Decision:
    """The aggregate after a command, and its claim changes."""

    aggregate: Aggregate
    claims: ClaimChanges = field(default_factory=ClaimChanges)


class DirectCommitter:
    """Commits each unit of work in a transaction of its own."""

    def __init__(self, app: Application[UUID]) -> None:
        self._app = app

    def commit(self, unit: UnitOfWork) -> list[Recording[Any]]:
        return self._app.save(*unit.events, side_records=unit.side_records)


class CommandService(Application[UUID]):
    """An event-sourced application whose public methods are the context's commands."""

    max_attempts: ClassVar[int] = 30
    max_backoff_seconds: ClassVar[float] = 0.02

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self.committer: Committer = DirectCommitter(self)
        self.commit_listeners: list[Callable[[str], None]] = []
        """Called with the service's name after each commit (e.g. to wake a log tailer)."""

    @property
    def side_records(self) -> SideRecordStore:
        return cast(SideRecordStore, self.recorder)

    def load(self, aggregate_type: type[A], aggregate_id: UUID) -> A:
        aggregate: Aggregate | None
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            aggregate = None
        if not isinstance(aggregate, aggregate_type):
            label = aggregate_type.__name__
            raise AggregateNotFound(f"no {label} with id {aggregate_id}")
        return aggregate

    def create(self, ctx: CommandContext, decide: Callable[[], Decision]) -> CommandResult:
        return self._run(ctx, decide)

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
            if ctx.expected_version is not None and aggregate.version != ctx.expected_version:
                raise StaleVersion(
                    f"{aggregate_type.__name__} {aggregate_id} is at version "
                    f"{aggregate.version}, not {ctx.expected_version}"
                )
            claims = change(aggregate)
            return Decision(aggregate, claims=claims or ClaimChanges())

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
        side_records = SideRecords(
            idempotency=self._idempotency_records(ctx, aggregate),
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
        for listener in self.commit_listeners:
            listener(self.name)
        if recordings:
            position = recordings[-1].notification.id
        else:
            position = self.side_records.position_of(aggregate.id, aggregate.version) or 0
        return CommandResult(aggregate.id, aggregate.version, position)

    @staticmethod
    def _idempotency_records(ctx: CommandContext, aggregate: Aggregate) -> list[IdempotencyRecord]:
        if ctx.idempotency_key is None:
            return []
        return [
            IdempotencyRecord(ctx.idempotency_key, ctx.fingerprint, aggregate.id, aggregate.version)
        ]

    def _replay(self, ctx: CommandContext) -> CommandResult | None:
        if ctx.idempotency_key is None:
            return None
        record = self.side_records.find_idempotency_record(ctx.idempotency_key)
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
        if ctx.expected_version is not None:
            aggregate = decision.aggregate
            raise StaleVersion(
                f"{type(aggregate).__name__} {aggregate.id} was changed concurrently; "
                f"it is no longer at version {ctx.expected_version}"
            )

    def _back_off(self, attempt: int) -> None:
        time.sleep(random.uniform(0, min(self.max_backoff_seconds, 0.001 * 2**attempt)))
