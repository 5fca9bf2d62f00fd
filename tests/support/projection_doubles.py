"""Doubles for the pure projection tests: envelopes made by hand and an in-memory engine
target that fails on demand."""

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from eventlog.envelope import EventEnvelope
from projections.dead_letters import DeadLetter
from projections.model import Apply, Message, OpsProjection, Park, ProjectionFailed, Step
from projections.models import UserStats
from readmodels.checkpoints import Checkpoint
from readmodels.schema import DEAD_LETTERS, create_tables
from readmodels.sql import SqlDatabase, SQLiteDatabase

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def envelope(
    event_type: str,
    data: dict[str, object],
    *,
    aggregate: str = "Order",
    position: int = 1,
    version: int = 1,
    aggregate_id: UUID | None = None,
    schema_version: int = 1,
) -> EventEnvelope:
    return EventEnvelope(
        position=position,
        context="orders" if aggregate == "Order" else "users",
        aggregate_type=aggregate,
        aggregate_id=aggregate_id or UUID(int=position),
        aggregate_version=version,
        event_type=event_type,
        schema_version=schema_version,
        timestamp=T,
        data=data,
    )


class FakeTarget:
    """Applies in memory; raises for positions in `failing` (each time, or `times` times)."""

    def __init__(self, failing: dict[int, int]) -> None:
        self.failing = failing
        self.applied: list[int] = []
        self.parked: list[tuple[int, str, int]] = []
        self.position = 0
        self.commits = 0
        self.projection: OpsProjection = UserStats()
        self.dead_letter_db: SqlDatabase = SQLiteDatabase(Path(":memory:"))  # none skipped
        with self.dead_letter_db.transaction() as tx:
            create_tables(tx, (DEAD_LETTERS,))

    def prepare(self) -> None: ...

    def checkpoint(self, context: str) -> Checkpoint:
        return Checkpoint(self.position)

    def rewind(self, context: str) -> Checkpoint:
        return self.checkpoint(context)

    def parked_heads(self, context: str) -> dict[UUID, int]:
        heads: dict[UUID, int] = {}
        for position, _, _ in self.parked:
            heads.setdefault(UUID(int=position % 10), position)
        return heads

    def commit(self, context: str, steps: Sequence[Step]) -> None:
        self.commits += 1
        for step in steps:  # all or nothing
            left = self.failing.get(step.message.position, 0)
            if isinstance(step, Apply) and left:
                self.failing[step.message.position] = left - 1
                raise ProjectionFailed(step.message.position, ValueError("boom"))
        for step in steps:
            if step.message.position <= self.position:
                continue
            if isinstance(step, Apply):
                self.applied.append(step.message.position)
            elif isinstance(step, Park):
                self.parked.append((step.message.position, step.error, step.attempts))
            self.position = step.message.position

    def reapply(self, letter: DeadLetter) -> None: ...


def paid_messages(*positions: int) -> list[Message]:
    # aggregate = position % 10: 11, 21 and 31 belong to aggregate 1
    return [
        Message(envelope("Paid", {"amount": "1"}, position=p, aggregate_id=UUID(int=p % 10)))
        for p in positions
    ]
