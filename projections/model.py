"""What projections receive, what they declare, and how a failure is reported."""

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self
from uuid import UUID

from eventlog.envelope import EventEnvelope
from projections.document_ops import Op
from projections.rows import Rows, SqlRows
from readmodels.catalog import ReadModel
from readmodels.sql import Table, Tx


@dataclass(frozen=True)
class Message:
    """An envelope as delivered, with its JetStream stream sequence (0 when read from a store)."""

    envelope: EventEnvelope
    stream_seq: int = 0

    @property
    def position(self) -> int:
        return self.envelope.position

    @property
    def aggregate_id(self) -> UUID:
        return self.envelope.aggregate_id


@dataclass(frozen=True)
class Apply:
    """Apply the event to the read model."""

    message: Message


@dataclass(frozen=True)
class Park:
    """Do not apply the event: record it as a dead letter and move the checkpoint past it."""

    message: Message
    error: str
    attempts: int


Step = Apply | Park


class ProjectionFailed(Exception):
    """The projection raised on the event at `position` (not an infrastructure failure)."""

    def __init__(self, position: int, error: BaseException | str) -> None:
        self.position = position
        self.error = error if isinstance(error, str) else describe(error)
        super().__init__(f"position {position}: {self.error}")


class CheckpointLost(Exception):
    """A read model's store holds a checkpoint behind one it acknowledged before: it lost data
    (a Redis restarted empty, or from an older snapshot). What it holds is consistent, data and
    checkpoint together, so the projector re-projects from `found` (see `Target.rewind`)."""

    def __init__(self, store: str, label: str, context: str, found: int, acknowledged: int) -> None:
        self.store = store
        self.label = label
        self.context = context
        self.found = found
        self.acknowledged = acknowledged
        super().__init__(
            f"{store} lost checkpoint for {label} ({context}): it holds {found},"
            f" behind the {acknowledged} it acknowledged"
        )


def describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class UnsupportedEvent(Exception):
    """An event of a schema version this projection does not know how to read."""


class Projection(ABC):
    """The code that folds events into one read model (`readmodels.catalog`): its name, version
    and the contexts whose events it reads come from the model it writes."""

    read_model: ReadModel
    """The model at version 1 on the class; an instance may write another version."""

    @property
    def name(self) -> str:
        return self.read_model.name

    @property
    def version(self) -> int:
        return self.read_model.version

    @property
    def contexts(self) -> tuple[str, ...]:
        return self.read_model.contexts

    @property
    def label(self) -> str:
        return self.read_model.label

    def at_version(self, version: int) -> Self:
        """This projection writing version `version` (the same code, other names)."""
        if version == self.version:
            return self
        made = copy.copy(self)
        made.read_model = self.read_model.at(version)
        return made

    @staticmethod
    def require_schema(event: EventEnvelope, supported: int = 1) -> None:
        if event.schema_version > supported:
            raise UnsupportedEvent(
                f"{event.aggregate_type}.{event.event_type} schema version {event.schema_version}"
                f" (this projection reads up to {supported})"
            )


class OpsProjection(Projection):
    """A document-shaped read model (Redis in the stack mode): each event becomes operations,
    which an executor runs on Redis or on the generic SQL tables."""

    @abstractmethod
    def operations(self, event: EventEnvelope) -> Sequence[Op]:
        """The operations for one event (none for events this projection ignores)."""


class SqlProjection(Projection):
    """A relational read model: the statements each event runs on its tables."""

    @property
    def tables(self) -> tuple[Table, ...]:
        """The tables as named at version 1 (statements are written against those names)."""
        return self.read_model.tables

    @property
    def row_keys(self) -> dict[str, tuple[str, ...]]:
        """The key each table's rows are named by in `project`: its primary key, unless
        overridden here (another unique key)."""
        return {table.name: table.primary_key for table in self.tables}

    def apply(self, tx: Tx, event: EventEnvelope) -> None:
        """Apply one event inside the batch's transaction."""
        self.project(SqlRows(tx), event)

    @abstractmethod
    def project(self, rows: Rows, event: EventEnvelope) -> None:
        """The event's effect on the rows (the same code for live projection and bulk folds)."""
