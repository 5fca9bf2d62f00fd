"""Applying batches of events to a read model, exactly once in effect, with poison handling.

For one (projection, context) a batch goes through:

1. drop messages at or below the checkpoint (duplicates, redeliveries);
2. plan each remaining one: apply it, or park it if its aggregate already has a parked event;
3. commit the plan as one unit (one transaction, or one Redis pipeline) with the checkpoint.

If the projection raises on an event (:class:`ProjectionFailed`), the batch falls back to one
commit per event: the failing event is retried with backoff, then parked with its error, and
the later events of its aggregate are parked behind it; other aggregates keep flowing and the
checkpoint moves past parked events. Infrastructure errors (a lost connection) propagate: the
caller retries the batch later, and the checkpoint makes that safe.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from eventlog.logs import correlation
from projections.dead_letters import DeadLetter, blocked_error
from projections.model import (
    Apply,
    Checkpoint,
    Message,
    Park,
    Projection,
    ProjectionFailed,
    Step,
)
from projections.sql import SqlDatabase

logger = logging.getLogger("strata.projections")


class Target(Protocol):
    """Where one projection's read model lives, with its checkpoints (see sql_target and
    redis_target)."""

    @property
    def projection(self) -> Projection: ...

    @property
    def dead_letter_db(self) -> SqlDatabase:
        """The SQL database holding this projection's `dead_letters`."""

    def prepare(self) -> None:
        """Create tables and checkpoint rows (idempotent)."""

    def checkpoint(self, context: str) -> Checkpoint: ...

    def parked_heads(self, context: str) -> dict[UUID, int]:
        """Aggregates with parked events, each with its first parked position."""

    def commit(self, context: str, steps: Sequence[Step]) -> None:
        """Apply and park `steps` and move the checkpoint to the last one, all or nothing.

        Steps at or below the checkpoint are skipped. Raises ProjectionFailed when the
        projection raises on an event; the checkpoint then covers at most the events before it.
        """

    def reapply(self, letter: DeadLetter) -> None:
        """Apply a parked event without touching the checkpoint and mark it retried, exactly
        once; ProjectionFailed if the projection raises again."""


@dataclass(frozen=True)
class RetryPolicy:
    """Pauses between attempts at an event the projection raised on; then it is parked."""

    delays: tuple[float, ...] = (0.1, 0.5, 2.0)

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1


@dataclass(frozen=True)
class Outcome:
    applied: int = 0
    parked: int = 0
    duplicates: int = 0
    checkpoint: Checkpoint | None = None
    last_event_time: datetime | None = None


class Engine:
    def __init__(
        self,
        target: Target,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._checkpoints: dict[str, Checkpoint] = {}
        """The checkpoint per context as this engine last committed it (a lower bound: another
        writer can only have moved it further, which the target's commit catches)."""

    def reload(self, context: str | None = None) -> None:
        """Forget the checkpoint kept in memory (of `context`, or of all): the next batch reads
        it from the target."""
        if context is None:
            self._checkpoints.clear()
        else:
            self._checkpoints.pop(context, None)

    @property
    def projection(self) -> Projection:
        return self.target.projection

    def handle(self, context: str, messages: Sequence[Message]) -> Outcome:
        """Apply one batch of a context's messages (any order, duplicates allowed)."""
        checkpoint = self._checkpoints.get(context)
        if checkpoint is None:
            checkpoint = self.target.checkpoint(context)
        fresh = _increasing({m.position: m for m in messages if m.position > checkpoint.position})
        duplicates = len(messages) - len(fresh)
        if not fresh:
            return Outcome(duplicates=duplicates, checkpoint=checkpoint)
        self._checkpoints.pop(context, None)  # unknown until this batch commits
        parked = self.target.parked_heads(context)
        steps = [self._plan(message, parked) for message in fresh]
        try:
            self.target.commit(context, steps)
        except ProjectionFailed as failure:
            logger.warning(
                "batch failed at position %d, applying it event by event",
                failure.position,
                extra={"projection": self.projection.label, "context": context},
            )
            steps = self._one_by_one(context, steps, parked)
        outcome = self._outcome(context, steps, duplicates)
        if outcome.checkpoint is not None:
            self._checkpoints[context] = outcome.checkpoint
        return outcome

    def _plan(self, message: Message, parked: dict[UUID, int]) -> Step:
        head = parked.get(message.aggregate_id)
        if head is not None and head <= message.position:
            return Park(message, blocked_error(head), attempts=0)
        return Apply(message)

    def _one_by_one(
        self, context: str, steps: Sequence[Step], parked: dict[UUID, int]
    ) -> list[Step]:
        done: list[Step] = []
        for planned in steps:
            step = self._plan(planned.message, parked) if isinstance(planned, Apply) else planned
            if isinstance(step, Apply):
                step = self._apply_with_retries(context, step)
                if isinstance(step, Park):
                    parked[step.message.aggregate_id] = step.message.position
            if isinstance(step, Park):
                self.target.commit(context, [step])
            done.append(step)
        return done

    def _apply_with_retries(self, context: str, step: Apply) -> Step:
        """The step if it applied; a Park with the last error once the attempts are spent."""
        error = ""
        for delay in (*self.policy.delays, None):
            try:
                self.target.commit(context, [step])
            except ProjectionFailed as failure:
                error = failure.error
                if delay is not None:
                    self._sleep(delay)
                continue
            return step
        attempts = self.policy.attempts
        envelope = step.message.envelope
        with correlation(envelope.correlation_id):
            logger.error(
                "parked %s.%s at position %d after %d attempts: %s",
                envelope.aggregate_type,
                envelope.event_type,
                envelope.position,
                attempts,
                error,
                extra={
                    "projection": self.projection.label,
                    "context": context,
                    "position": envelope.position,
                    "aggregate_id": str(envelope.aggregate_id),
                },
            )
        return Park(step.message, error, attempts=attempts)

    def _outcome(self, context: str, steps: Sequence[Step], duplicates: int) -> Outcome:
        applied = [step.message for step in steps if isinstance(step, Apply)]
        parked = len(steps) - len(applied)
        last = steps[-1].message
        if logger.isEnabledFor(logging.DEBUG):
            for message in applied:
                envelope = message.envelope
                with correlation(envelope.correlation_id):
                    logger.debug(
                        "applied %s.%s",
                        envelope.aggregate_type,
                        envelope.event_type,
                        extra={
                            "projection": self.projection.label,
                            "context": context,
                            "position": envelope.position,
                            "aggregate_id": str(envelope.aggregate_id),
                        },
                    )
        return Outcome(
            applied=len(applied),
            parked=parked,
            duplicates=duplicates,
            checkpoint=Checkpoint(last.position, last.stream_seq),
            last_event_time=last.envelope.timestamp,
        )


def _increasing(by_position: dict[int, Message]) -> list[Message]:
    return [by_position[position] for position in sorted(by_position)]
