"""What payments and shipping share as participants of the fulfilment: an aggregate whose
intents wait for an outside provider, the jobs those intents start, the command-service base,
and the worker that calls the provider for each due job.

A participant command only records intent (`CaptureRequested`) and answers at once; the intent
event is committed with a job. The worker takes the due job, calls the provider with the job's
key as the idempotency key, and commits the outcome (`Captured`), which finishes the job in the
same transaction. A job whose aggregate no longer awaits it is stale: the poller drops it.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from contexts.registry import WorkerEnvironment
from domain.aggregate import EventSourcedAggregate
from domain.errors import AggregateNotFound, DomainError
from domain.ports import Job, JobChanges
from domain.service import ClaimChanges, CommandContext, CommandResult, CommandService, Decision
from eventlog.jobs import JobFailed, RetryLater
from runtime.resilience import (
    BREAKER_SETTINGS,
    DownstreamClient,
    DownstreamProtocolError,
    http_client,
)

log = logging.getLogger("strata.participants")


def operation_key(aggregate_id: UUID, operation: str) -> str:
    """A job's key, which is also the provider's idempotency key: `<id>:<operation>`."""
    return f"{aggregate_id}:{operation}"


def parse_operation_key(key: str) -> tuple[UUID, str]:
    aggregate_id, separator, operation = key.partition(":")
    if not separator or not operation:
        raise ValueError(f"job key {key!r} is not <id>:<operation>")
    return UUID(aggregate_id), operation


class AwaitingProvider(EventSourcedAggregate):
    """An aggregate with a status, some of which await a provider's outcome of an operation."""

    AWAITS: ClassVar[Mapping[str, str]] = {}
    """Status -> the operation a provider is asked for while the aggregate is in it."""

    status: StrEnum
    reference: str | None
    """The provider's reference of the first operation, which the later ones name."""

    @property
    def pending_operation(self) -> str | None:
        return self.AWAITS.get(self.status)

    def provider_reference(self) -> str:
        if self.reference is None:
            noun = type(self).__name__.lower()
            raise ValueError(f"{noun} {self.id} is {self.status} without a provider reference")
        return self.reference

    def _require(self, *allowed: StrEnum, action: str, hint: str = "") -> None:
        if self.status not in allowed:
            noun = type(self).__name__.lower()
            required = " or ".join(str(status) for status in allowed)
            raise DomainError(
                f"cannot {action}: the {noun} is {self.status}, it must be {required}{hint}"
            )

    def _request(
        self,
        event_class: type[Aggregate.Event],
        *,
        action: str,
        source: StrEnum,
        done: Sequence[StrEnum],
        hint: str = "",
    ) -> None:
        """Record an intent, or nothing if it is pending or done already: a participant's
        caller (the saga) may send one intent again after a crash."""
        if self.status in done:
            return
        self._require(source, action=action, hint=hint)
        self.trigger_event(event_class)


EventClass = type[Aggregate.Event]


@dataclass(frozen=True)
class OperationJobs:
    """Which events start and which finish each provider operation, as jobs of one kind."""

    kind: str
    starts: Mapping[EventClass, str]
    finishes: Mapping[EventClass, str]

    def changes(self, events: Sequence[Aggregate.Event]) -> JobChanges:
        """The jobs these new events start (due at once) and finish: a pure function of them."""
        start, finish = [], []
        for event in events:
            if operation := self.starts.get(type(event)):
                key = operation_key(event.originator_id, operation)
                start.append(Job(self.kind, key, event.timestamp))
            if operation := self.finishes.get(type(event)):
                finish.append((self.kind, operation_key(event.originator_id, operation)))
        return JobChanges(start, finish)


P = TypeVar("P", bound=AwaitingProvider)


class ParticipantService(CommandService):
    """A command service whose aggregates are created at ids their callers give, and whose
    intents are carried out by a worker through a provider."""

    operation_jobs: ClassVar[OperationJobs]

    def job_changes(self, aggregate: Aggregate, events: Sequence[Aggregate.Event]) -> JobChanges:
        return self.operation_jobs.changes(events)

    def create_at(
        self,
        ctx: CommandContext,
        aggregate_type: type[P],
        aggregate_id: UUID,
        new: Callable[[], Decision],
        same_request: Callable[[P], None],
    ) -> CommandResult:
        """Create the aggregate at this id; if it exists already, answer its current state and
        append nothing, once `same_request` has checked it was asked for with these values."""

        def decide() -> Decision:
            existing = self.find(aggregate_type, aggregate_id)
            if existing is None:
                return new()
            same_request(existing)
            return Decision(existing)

        return self.create(ctx, decide)

    def find(self, aggregate_type: type[P], aggregate_id: UUID) -> P | None:
        try:
            return self.load(aggregate_type, aggregate_id)
        except AggregateNotFound:
            return None

    def state(self, aggregate_type: type[P], aggregate_id: UUID, at: datetime | None) -> P:
        """The aggregate now, or as of instant `at` (the GET endpoints' `as_of`)."""
        if at is None:
            return self.load(aggregate_type, aggregate_id)
        return self.state_at(aggregate_type, aggregate_id, at=at)

    def complete(
        self,
        aggregate_type: type[P],
        aggregate_id: UUID,
        operation: str,
        record: Callable[[P], ClaimChanges | None],
    ) -> bool:
        """Record a provider's outcome of `operation`; False, writing nothing, if the aggregate
        no longer awaits it (a stale job)."""
        applied = False

        def change(aggregate: P) -> ClaimChanges | None:
            nonlocal applied
            applied = aggregate.pending_operation == operation
            return record(aggregate) if applied else None

        ctx = CommandContext(causation_id=operation_key(aggregate_id, operation))
        self.update(ctx, aggregate_type, aggregate_id, change)
        return applied


Operation = Callable[[str, P], bool]
"""Calls the provider for one operation (given the idempotency key and the aggregate) and
records the outcome; False if the outcome found the aggregate no longer waiting."""


class ParticipantWorker(Generic[P]):
    """Carries out a participant's due jobs of one kind: the `handle` of its job poller.

    The outcome's commit finishes the job in its transaction. A stale job (its aggregate gone or
    no longer awaiting it) is answered by returning: the poller then drops it. A provider that
    is unavailable raises (`ProviderUnavailable`, `CarrierUnavailable`): the poller reschedules
    the job with backoff, and the retry sends the same idempotency key. A provider that refuses
    the request (a 4xx: `DownstreamProtocolError`), or a job the worker cannot read, raises
    `JobFailed`: no retry mends that, so the poller parks the job for an operator
    (`replay jobs`); the aggregate keeps waiting, and the saga's deadline for the step decides.
    """

    unavailable: ClassVar[type[Exception]] = Exception
    """The provider's "could not reach it" error: the job is retried later, logged in one line."""

    def __init__(
        self, kind: str, load: Callable[[UUID], P], operations: Mapping[str, Operation[P]]
    ) -> None:
        self.kind = kind
        self._load = load
        self._operations = operations

    def handle(self, job: Job) -> None:
        try:
            aggregate_id, operation = parse_operation_key(job.key)
        except ValueError as error:
            raise JobFailed(str(error)) from error
        call = self._operations.get(operation)
        if call is None:
            raise JobFailed(f"job {job.key!r}: {self.kind} has no operation {operation!r}")
        try:
            aggregate = self._load(aggregate_id)
        except AggregateNotFound:
            _stale(job, "its aggregate does not exist")
            return
        if aggregate.pending_operation != operation:
            _stale(job, f"its aggregate is {aggregate.status}")
            return
        try:
            done = call(job.key, aggregate)
        except self.unavailable as error:
            raise RetryLater(str(error)) from error
        except DownstreamProtocolError as error:
            raise JobFailed(f"the provider refused it: {error}") from error
        if not done:
            _stale(job, "its aggregate moved on during the call")


def _stale(job: Job, why: str) -> None:
    log.info("stale %s job %s: %s", job.kind, job.key, why)


def provider_worker(
    service: type[ParticipantService],
    client: type[DownstreamClient],
    worker: Callable[[Any, Any], ParticipantWorker[Any]],
) -> Callable[[CommandService, WorkerEnvironment], Callable[[Job], None]]:
    """The `Worker.handler` of a participant: its worker over an HTTP client of its provider,
    with the breaker and retries of the settings, its metrics on the process's /metrics; the
    breaker follows the live settings' thresholds."""

    def handler(
        application: CommandService, environment: WorkerEnvironment
    ) -> Callable[[Job], None]:
        assert isinstance(application, service)
        settings = environment.live.current
        http = http_client(settings.provider_timeout_seconds)
        provider = client.from_settings(settings, http, environment.breakers)
        environment.live.on_change(BREAKER_SETTINGS, provider.breaker.follow)
        return worker(application, provider).handle

    return handler
