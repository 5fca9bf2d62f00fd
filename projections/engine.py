"""Applying batches of events to a read model, exactly once in effect, with poison handling.

For one (projection, context) a batch goes through:

1. drop messages at or below the checkpoint (duplicates, redeliveries);
2. plan each remaining one: apply it, or park it if its aggregate already has a parked event
   (or leave it out, if a person skipped it: re-projecting a seen position, see dead_letters);
3. commit the plan as one unit (one transaction, or one Redis pipeline) with the checkpoint.

If the projection raises on an event (:class:`ProjectionFailed`), that event is set aside at
once: parked with its error, the later events of its aggregate parked behind it, and the batch
committed again without it. So a failing event holds nothing back for longer than its batch:
other aggregates flow and the checkpoint moves past parked events. The engine retries the set
aside event between batches on the policy's schedule (:mod:`projections.retrying`); once the
attempts are spent it stays parked for a person. Infrastructure errors (a lost connection, a
Redis that is down) are never parked: they propagate, the caller retries the batch later, and
the checkpoint makes that safe.
"""

import logging
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from projections import dead_letters
from projections.dead_letters import DeadLetter, blocked_error
from projections.model import Apply, Message, Park, Projection, ProjectionFailed, Step
from projections.retrying import RetryPolicy, RetrySchedule, log_parked
from readmodels.checkpoints import Checkpoint
from readmodels.sql import SqlDatabase
from runtime.logs import correlation

__all__ = ["Engine", "Outcome", "RetryPolicy", "Target"]

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

    def checkpoint(self, context: str) -> Checkpoint:
        """The context's checkpoint; CheckpointLost if the store went back behind one it
        acknowledged (until `rewind`)."""

    def rewind(self, context: str) -> Checkpoint:
        """Accept the checkpoint the store holds, even behind what it acknowledged before, and
        return it: the feed starts again from there."""

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
class Outcome:
    applied: int = 0
    parked: int = 0
    skipped: int = 0
    """Events a person skipped before (re-projected positions): left out again."""
    duplicates: int = 0
    checkpoint: Checkpoint | None = None
    last_event_time: datetime | None = None


class Engine:
    def __init__(
        self,
        target: Target,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        partition: int | None = None,
    ) -> None:
        """`partition`: the one partition whose events this engine is fed (a projector
        worker's), and so the only one whose parked events it retries; None: all of them."""
        self.target = target
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._partition = partition
        self._checkpoints: dict[str, Checkpoint] = {}
        """The checkpoint per context as this engine last committed it (a lower bound: another
        writer can only have moved it further, which the target's commit catches)."""
        self._schedules: dict[str, RetrySchedule] = {}

    def reload(self, context: str | None = None) -> None:
        """Forget what is kept in memory (of `context`, or of all): the next batch reads the
        checkpoint, and the next retry round the dead letters, from the target."""
        if context is None:
            self._checkpoints.clear()
            self._schedules.clear()
        else:
            self._checkpoints.pop(context, None)
            self._schedules.pop(context, None)

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
        skipped = self._skipped(context, fresh)
        steps = [self._plan(message, parked, skipped) for message in fresh]
        steps = self._commit_setting_aside(context, steps, parked)
        outcome = self._outcome(context, steps, duplicates, len(skipped))
        if outcome.checkpoint is not None:
            self._checkpoints[context] = outcome.checkpoint
        return outcome

    def retries_due(self, context: str) -> bool:
        """Whether `retry_due` has work (cheap: no I/O)."""
        schedule = self._schedules.get(context)
        return schedule is None or schedule.has_due()

    def retry_due(self, context: str) -> int:
        """Retry the parked events whose pause is over (call it between batches); the number
        of events applied."""
        return self._schedule(context).run_due()

    def _skipped(self, context: str, fresh: Sequence[Message]) -> set[int]:
        p = self.projection
        with self.target.dead_letter_db.transaction(write=False) as tx:
            return dead_letters.skipped(
                tx, p.name, p.version, context, fresh[0].position, fresh[-1].position
            )

    def _plan(
        self, message: Message, parked: dict[UUID, int], skipped: AbstractSet[int] = frozenset()
    ) -> Step:
        if message.position in skipped:  # its row stays as it is: skipped
            return Park(message, "skipped", attempts=0)
        head = parked.get(message.aggregate_id)
        if head is not None and head <= message.position:
            return Park(message, blocked_error(head), attempts=0)
        return Apply(message)

    def _commit_setting_aside(
        self, context: str, steps: list[Step], parked: dict[UUID, int]
    ) -> list[Step]:
        """Commit the batch; each event the projection raises on is parked (with its
        aggregate's later events) and the batch committed again, until it goes through."""
        while True:
            try:
                self.target.commit(context, steps)
            except ProjectionFailed as failure:
                steps = self._set_aside(context, steps, failure, parked)
                continue
            return steps

    def _set_aside(
        self,
        context: str,
        steps: list[Step],
        failure: ProjectionFailed,
        parked: dict[UUID, int],
    ) -> list[Step]:
        index = next(
            (
                i
                for i, step in enumerate(steps)
                if isinstance(step, Apply) and step.message.position == failure.position
            ),
            None,
        )
        if index is None:
            raise failure  # not an event of this batch: a defect, not a poison event
        message = steps[index].message
        parked[message.aggregate_id] = message.position
        self._report_set_aside(context, message, failure.error)
        self._schedule(context).set_aside(message.aggregate_id, message.position)
        after = [
            self._plan(step.message, parked) if isinstance(step, Apply) else step
            for step in steps[index + 1 :]
        ]
        return [*steps[:index], Park(message, failure.error, attempts=1), *after]

    def _schedule(self, context: str) -> RetrySchedule:
        schedule = self._schedules.get(context)
        if schedule is None:
            schedule = self._schedules[context] = RetrySchedule(
                self.target,
                self.projection,
                context,
                self.policy,
                self._clock,
                self._partition,
            )
        return schedule

    def _report_set_aside(self, context: str, message: Message, error: str) -> None:
        envelope = message.envelope
        delay = self.policy.delay_after(1)
        if delay is None:
            log_parked(self.projection, context, envelope, 1, error)
            return
        with correlation(envelope.correlation_id):
            logger.warning(
                "set aside %s.%s at position %d (attempt 1 of %d, next in %g s): %s",
                envelope.aggregate_type,
                envelope.event_type,
                envelope.position,
                self.policy.attempts,
                delay,
                error,
                extra={
                    "projection": self.projection.label,
                    "context": context,
                    "position": envelope.position,
                    "aggregate_id": str(envelope.aggregate_id),
                },
            )

    def _outcome(
        self, context: str, steps: Sequence[Step], duplicates: int, skipped: int
    ) -> Outcome:
        applied = [step.message for step in steps if isinstance(step, Apply)]
        parked = len(steps) - len(applied) - skipped
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
            skipped=skipped,
            duplicates=duplicates,
            checkpoint=Checkpoint(last.position, last.stream_seq),
            last_event_time=last.envelope.timestamp,
        )


def _increasing(by_position: dict[int, Message]) -> list[Message]:
    return [by_position[position] for position in sorted(by_position)]
