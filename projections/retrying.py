"""Retrying parked events: the chain of one aggregate, and the engine's schedule of retries.

An event a projection raises on is parked at once, with the later events of its aggregate behind
it, so the rest of the batch and later batches commit. The engine then retries it on a schedule
(:class:`RetryPolicy`), between batches; once the attempts are spent it stays parked for a
person (`replay dlq retry` / `skip`). Retrying applies the parked event and then the ones parked
behind it, in position order, each exactly once and without moving checkpoints.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from eventlog.envelope import EventEnvelope, partition_of
from projections import dead_letters
from projections.dead_letters import DeadLetter
from projections.model import Projection, ProjectionFailed
from readmodels.sql import SqlDatabase
from runtime.logs import correlation

logger = logging.getLogger("strata.projections")

MAX_ROUNDS = 10
"""Rounds of a chain retry: events parked while it runs join the chain and get the next round."""
RELOAD_SECONDS = 30.0
"""How often a schedule reads the parked heads again. A batch decides to park an event behind
its aggregate's parked head before it commits; a retry finishing in between (a person's, or
another partition's engine) leaves that event the head, blocked by nothing and with no attempt
made. Read again, such a head is retried at once. A projector worker's engine reads only the
heads of its own partition: another worker holds the others."""


class Reapplier(Protocol):
    def reapply(self, letter: DeadLetter) -> None: ...


class ParkingTarget(Reapplier, Protocol):
    @property
    def dead_letter_db(self) -> SqlDatabase: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Pauses between attempts at an event the projection raised on; then it stays parked.

    The first attempt is the batch's; the n-th retry comes `delays[n - 1]` seconds after the
    attempt before it failed. Other aggregates never wait for these pauses."""

    delays: tuple[float, ...] = (0.5, 2.0, 10.0)

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1

    def delay_after(self, attempts: int) -> float | None:
        """Seconds until the next attempt after `attempts` failed ones (None: give up)."""
        return self.delays[attempts - 1] if 1 <= attempts < self.attempts else None


@dataclass(frozen=True)
class RetryResult:
    retried: list[int] = field(default_factory=list)
    """Ids applied and marked 'retried', in order."""
    failed: DeadLetter | None = None
    """The entry that failed again (still parked, with its new error), if any."""


def retry_chain(db: SqlDatabase, target: Reapplier, letter: DeadLetter) -> RetryResult:
    """Apply `letter` (the first parked event of its aggregate) and the events parked behind it;
    stop at the first that fails again, which stays parked with its error and one more attempt."""
    retried: list[int] = []
    chain = read_chain(db, letter)
    for _ in range(MAX_ROUNDS):
        for entry in chain:
            try:
                target.reapply(entry)
            except ProjectionFailed as failure:
                with db.transaction() as tx:
                    dead_letters.record_failure(tx, entry.id, failure.error, entry.attempts + 1)
                    failed = dead_letters.get(tx, entry.id)
                return RetryResult(retried, failed)
            retried.append(entry.id)
        chain = read_chain(db, letter)
        if not chain:
            break
    return RetryResult(retried)


def read_chain(db: SqlDatabase, letter: DeadLetter) -> list[DeadLetter]:
    """The parked events of `letter`'s aggregate from its head on, in position order."""
    with db.transaction(write=False) as tx:
        return dead_letters.chain(tx, letter)


class RetrySchedule:
    """When to retry the parked head of each aggregate of one (projection, context).

    Kept in memory and read again from the dead letters every `RELOAD_SECONDS` (heads with
    attempts left are due one pause after they are read, heads with no attempt made at once),
    so a restart loses no retry."""

    def __init__(
        self,
        target: ParkingTarget,
        projection: Projection,
        context: str,
        policy: RetryPolicy,
        clock: Callable[[], float],
        partition: int | None = None,
    ) -> None:
        """`partition`: retry only the heads of aggregates in it (None: every head)."""
        self._target = target
        self._partition = partition
        self._projection = projection
        self._context = context
        self._policy = policy
        self._clock = clock
        self._due: dict[UUID, tuple[float, int]] = {}
        """Aggregate → (when, position of its parked head)."""
        self._loaded_at: float | None = None

    def set_aside(self, aggregate_id: UUID, position: int) -> None:
        """A first attempt failed in a batch (the event is parked now): retry it later."""
        delay = self._policy.delay_after(1)
        if delay is not None:
            self._due[aggregate_id] = (self._clock() + delay, position)

    def has_due(self) -> bool:
        now = self._clock()
        return self._reload_due(now) or any(when <= now for when, _ in self._due.values())

    def run_due(self) -> int:
        """Retry the chains whose time has come; the number of events applied."""
        now = self._clock()
        if self._reload_due(now):
            self._load(now)
        applied = 0
        for aggregate_id, (when, position) in list(self._due.items()):
            if when <= now:
                del self._due[aggregate_id]
                applied += self._retry(position)
        return applied

    def _load(self, start: float) -> None:
        p = self._projection
        with self._target.dead_letter_db.transaction(write=False) as tx:
            heads = dead_letters.heads(tx, p.name, p.version, self._context)
        if self._partition is not None:
            heads = [head for head in heads if partition_of(head.aggregate_id) == self._partition]
        for head in heads:
            delay = 0.0 if head.attempts == 0 else self._policy.delay_after(head.attempts)
            if delay is not None:
                self._due.setdefault(head.aggregate_id, (start + delay, head.position))
        self._loaded_at = start

    def _reload_due(self, now: float) -> bool:
        return self._loaded_at is None or now - self._loaded_at >= RELOAD_SECONDS

    def _retry(self, position: int) -> int:
        p = self._projection
        db = self._target.dead_letter_db
        with db.transaction(write=False) as tx:
            letter = dead_letters.find(tx, p.name, p.version, self._context, position)
        if letter is None or letter.status != "parked":
            return 0  # a person retried or skipped it meanwhile
        result = retry_chain(db, self._target, letter)
        if result.failed is not None:
            self._after_failure(result.failed)
        return len(result.retried)

    def _after_failure(self, letter: DeadLetter) -> None:
        delay = self._policy.delay_after(letter.attempts)
        if delay is not None:
            self._due[letter.aggregate_id] = (self._clock() + delay, letter.position)
            return
        log_parked(self._projection, self._context, letter.envelope, letter.attempts, letter.error)


def log_parked(
    projection: Projection, context: str, envelope: EventEnvelope, attempts: int, error: str
) -> None:
    """The error that asks a person to look: the event stays parked until retried or skipped."""
    with correlation(envelope.correlation_id):
        logger.error(
            "parked %s.%s at position %d after %d attempts: %s",
            envelope.aggregate_type,
            envelope.event_type,
            envelope.position,
            attempts,
            error,
            extra={
                "projection": projection.label,
                "context": context,
                "position": envelope.position,
                "aggregate_id": str(envelope.aggregate_id),
            },
        )
