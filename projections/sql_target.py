"""Read models in a SQL database (PostgreSQL, or SQLite in the embedded mode).

One transaction per batch: lock the checkpoint row (`FOR UPDATE`; SQLite's `BEGIN IMMEDIATE`
holds the write lock already), skip what it covers, apply the rest in order, record parked
events, move the checkpoint, notify `rm_ckpt`, commit. Dead letters live in the same database,
so parking is atomic with the checkpoint too. On PostgreSQL the batch's statements are
pipelined (readmodels.pipeline): a batch costs a few round trips, not one per statement.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from uuid import UUID

from eventlog.envelope import EventEnvelope
from projections import dead_letters
from projections.dead_letters import DeadLetter
from projections.document_ops import (
    Op,
    execute,
)
from projections.leases import Lease
from projections.model import (
    Apply,
    Message,
    OpsProjection,
    Park,
    Projection,
    ProjectionFailed,
    SqlProjection,
    Step,
)
from projections.row_batch import NotFoldable
from projections.row_batch_sql import apply_batch, foldable
from readmodels.catalog import ReadModel
from readmodels.checkpoints import Checkpoint, ensure_checkpoint, read_checkpoint, write_checkpoint
from readmodels.documents import DocumentTables
from readmodels.partition_checkpoints import (
    ensure_partition_checkpoint,
    lock_context,
    lock_partition,
    read_partition_checkpoint,
    write_partition_checkpoint,
)
from readmodels.pipeline import run_batch
from readmodels.schema import DOCUMENT_TABLES, SHARED_TABLES, create_tables
from readmodels.sql import SqlDatabase, Table, Tx
from readmodels.versions import RenamingTx
from runtime.logs import correlation


class SqlTarget(ABC):
    def __init__(self, db: SqlDatabase, lease: Lease | None = None) -> None:
        """`lease`: a projector worker's lease on one partition (projections.workers): this
        target then keeps that partition's checkpoints, fenced by the lease's epoch."""
        self.db = db
        self.lease = lease

    @property
    @abstractmethod
    def projection(self) -> Projection: ...

    @property
    def dead_letter_db(self) -> SqlDatabase:
        return self.db

    @property
    @abstractmethod
    def tables(self) -> tuple[Table, ...]: ...

    @abstractmethod
    def _apply(self, tx: Tx, envelope: EventEnvelope) -> None: ...

    def prepare(self) -> None:
        p = self.projection
        with self.db.transaction() as tx:
            create_tables(tx, (*SHARED_TABLES, *self.tables))
            for context in p.contexts:
                ensure_checkpoint(tx, p.name, p.version, context)
                if self.lease is not None:
                    ensure_partition_checkpoint(
                        tx, p.name, p.version, context, self.lease.partition
                    )

    def checkpoint(self, context: str) -> Checkpoint:
        p = self.projection
        with self.db.transaction(write=False) as tx:
            whole = read_checkpoint(tx, p.name, p.version, context)
            if self.lease is None:
                return whole
            mine = read_partition_checkpoint(tx, p.name, p.version, context, self.lease.partition)
            return max(whole, mine, key=lambda checkpoint: checkpoint.position)

    def rewind(self, context: str) -> Checkpoint:
        return self.checkpoint(context)  # read per batch: nothing remembered to forget

    def parked_heads(self, context: str) -> dict[UUID, int]:
        p = self.projection
        with self.db.transaction(write=False) as tx:
            return dead_letters.parked_heads(tx, p.name, p.version, context)

    def commit(self, context: str, steps: Sequence[Step]) -> None:
        run_batch(self.db, lambda tx: self.commit_in(tx, context, steps))

    def commit_in(self, tx: Tx, context: str, steps: Sequence[Step]) -> None:
        """`commit` inside a transaction of this target's database the caller holds."""
        p, lease = self.projection, self.lease
        if lease is None:
            checkpoint, floors = lock_context(tx, p.name, p.version, context)
        else:
            checkpoint = lock_partition(
                tx, p.name, p.version, context, lease.partition, lease.epoch
            )
            floors = {}
        last: Message | None = None
        parks: list[Park] = []
        applies: list[EventEnvelope] = []
        for step in steps:
            floor = checkpoint.position if last is None else last.position
            if step.message.position <= floor:
                continue  # a duplicate, or out of order: positions must increase
            last = step.message
            if floors and step.message.position <= floors.get(step.message.envelope.partition, 0):
                continue  # a worker applied it (partitioned before): a duplicate
            if isinstance(step, Apply):
                applies.append(step.message.envelope)
            else:
                parks.append(step)
        if last is None:
            return
        self._apply_all(tx, applies)
        dead_letters.insert(tx, p.name, p.version, context, parks)
        moved = Checkpoint(last.position, last.stream_seq)
        if lease is None:
            write_checkpoint(tx, p.name, p.version, context, moved)
        else:
            write_partition_checkpoint(
                tx, p.name, p.version, context, lease.partition, moved, lease.epoch
            )

    def reapply(self, letter: DeadLetter) -> None:
        with self.db.transaction() as tx:
            if dead_letters.mark(tx, letter.id, "retried", only_if="parked"):
                self._apply_one(tx, letter.envelope)  # else another retry did it already

    def _apply_all(self, tx: Tx, envelopes: Sequence[EventEnvelope]) -> None:
        """Apply a batch's events in order (one by one, unless a target folds them)."""
        for envelope in envelopes:
            self._apply_one(tx, envelope)

    def _apply_one(self, tx: Tx, envelope: EventEnvelope) -> None:
        with correlation(envelope.correlation_id):
            try:
                self._apply(tx, envelope)
            except Exception as error:
                dialect = self.db.dialect
                if dialect.is_infrastructure_error(error):
                    raise
                if tx.pipelined and dialect.is_driver_error(error):
                    raise  # maybe an earlier statement's: the plain run finds out
                if tx.pipelined:
                    tx.flush()  # an earlier event's deferred check fails first, if one does
                raise ProjectionFailed(envelope.position, error) from error


class SqlProjectionTarget(SqlTarget):
    """A relational projection's own tables."""

    def __init__(
        self, db: SqlDatabase, projection: SqlProjection, lease: Lease | None = None
    ) -> None:
        super().__init__(db, lease)
        self._projection = projection

    @property
    def projection(self) -> SqlProjection:
        return self._projection

    @property
    def tables(self) -> tuple[Table, ...]:
        """The projection's tables, named for its version (docs/read-models.md, versions)."""
        return self._projection.read_model.versioned_tables

    def _apply(self, tx: Tx, envelope: EventEnvelope) -> None:
        self._projection.apply(self._renaming(tx), envelope)

    def _apply_all(self, tx: Tx, envelopes: Sequence[EventEnvelope]) -> None:
        """Pipelined (PostgreSQL): one statement per table and change for the whole batch
        (projections.row_batch_sql); a batch that fails there runs again statement by
        statement (readmodels.pipeline), which finds the failing event."""
        if tx.pipelined and envelopes and foldable(self._projection):
            try:
                apply_batch(self._renaming(tx), self._projection, envelopes)
            except NotFoldable:
                pass  # nothing written: statement by statement
            else:
                return
        super()._apply_all(tx, envelopes)

    def _renaming(self, tx: Tx) -> Tx:
        names = self._projection.read_model.table_renames
        return RenamingTx(tx, names) if names else tx


class SqlDocumentTarget(SqlTarget):
    """A document-shaped projection on the generic `rm_hashes` and `rm_sorted_sets` tables."""

    def __init__(
        self, db: SqlDatabase, projection: OpsProjection, lease: Lease | None = None
    ) -> None:
        super().__init__(db, lease)
        self._projection = projection

    @property
    def projection(self) -> OpsProjection:
        return self._projection

    @property
    def tables(self) -> tuple[Table, ...]:
        return DOCUMENT_TABLES

    def _apply(self, tx: Tx, envelope: EventEnvelope) -> None:
        p = self._projection
        run_operations(tx, p.read_model, p.operations(envelope))


def run_operations(tx: Tx, model: ReadModel, ops: Sequence[Op]) -> None:
    """Execute document operations on the generic tables."""
    execute(ops, DocumentTables(tx, model))
