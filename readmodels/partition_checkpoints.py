"""Per-partition checkpoints: the last applied position of each (read model, version, context,
partition), for projector workers that split a context's `pNN` partitions between them
(projections/leases.py).

A partition's events reach its worker in position order (one subject per partition), so its
checkpoint is exact for that partition, whatever the other partitions have reached. Each write
carries the writer's lease epoch: a row is only moved by an epoch at least as high as the one
that last moved it, so a worker that lost its lease (a newer holder has committed) is refused
(LeaseLost) and nothing of its batch is written (the caller's transaction rolls back).

Read-your-writes with partitions: a command's position belongs to its aggregate's partition,
so a read waits for `reached(…, partition)` ≥ n, that one partition's checkpoint. A context's
position over all partitions (the `X-Read-Position` header) is the lowest partition checkpoint:
never more than every partition has applied, but held back by an idle partition, which is why a
token names its partition.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from readmodels.checkpoints import Checkpoint
from readmodels.sql import Column, Table, Tx

PARTITION_CHECKPOINTS = Table(
    "rm_partition_checkpoints",
    (
        Column("projection", "text", nullable=False),
        Column("version", "int", nullable=False),
        Column("context", "text", nullable=False),
        Column("partition", "int", nullable=False),
        Column("position", "bigint", nullable=False),
        Column("stream_seq", "bigint", nullable=False),
        Column("epoch", "bigint", nullable=False),
        Column("updated_at", "timestamptz"),
    ),
    primary_key=("projection", "version", "context", "partition"),
)

PartitionPositions = Mapping[tuple[str, str, int], int]
"""Checkpoints by (read model name, context, partition); missing: nothing applied yet (0)."""


class LeaseLost(Exception):
    """A newer lease holder has written this partition's checkpoint: stop writing."""


def ensure_partition_checkpoint(
    tx: Tx, projection: str, version: int, context: str, partition: int
) -> None:
    tx.execute(
        "INSERT INTO rm_partition_checkpoints (projection, version, context, partition, position,"
        " stream_seq, epoch, updated_at) VALUES (?, ?, ?, ?, 0, 0, 0, ?)"
        " ON CONFLICT (projection, version, context, partition) DO NOTHING",
        [projection, version, context, partition, datetime.now(UTC)],
    )


def read_partition_checkpoint(
    tx: Tx, projection: str, version: int, context: str, partition: int, *, lock: bool = False
) -> Checkpoint:
    """The checkpoint; with `lock`, the row stays locked until the transaction ends."""
    suffix = tx.dialect.for_update if lock else ""
    row = tx.query_one(
        "SELECT position, stream_seq FROM rm_partition_checkpoints"  # noqa: S608 - fixed suffix
        f" WHERE projection = ? AND version = ? AND context = ? AND partition = ?{suffix}",
        [projection, version, context, partition],
    )
    return Checkpoint() if row is None else Checkpoint(int(row[0]), int(row[1]))


def write_partition_checkpoint(
    tx: Tx,
    projection: str,
    version: int,
    context: str,
    partition: int,
    checkpoint: Checkpoint,
    epoch: int,
) -> None:
    """Move the checkpoint under lease `epoch`; LeaseLost if a newer epoch moved it (or the row
    was never ensured)."""
    tx.expect(
        "UPDATE rm_partition_checkpoints SET position = ?, stream_seq = ?, epoch = ?,"
        " updated_at = ? WHERE projection = ? AND version = ? AND context = ? AND partition = ?"
        " AND epoch <= ?",
        [
            checkpoint.position,
            checkpoint.stream_seq,
            epoch,
            datetime.now(UTC),
            projection,
            version,
            context,
            partition,
            epoch,
        ],
        1,
        lambda: LeaseLost(
            f"{projection}:v{version}:{context}:p{partition:02d}: a lease newer than epoch"
            f" {epoch} has written this checkpoint"
        ),
    )


def read_partition_positions(tx: Tx, models: Iterable[tuple[str, int]]) -> PartitionPositions:
    """The partition checkpoints of `models` ((name, version) pairs)."""
    wanted = set(models)
    if not wanted:
        return {}
    names = sorted({name for name, _ in wanted})
    rows = tx.query(
        "SELECT projection, version, context, partition, position"  # noqa: S608
        f" FROM rm_partition_checkpoints WHERE projection IN ({', '.join('?' * len(names))})",
        names,
    )
    return {
        (str(name), str(context), int(partition)): int(position)
        for name, version, context, partition, position in rows
        if (name, version) in wanted
    }


def reached(
    positions: PartitionPositions,
    model: str,
    context: str,
    partitions: int,
    partition: int | None = None,
) -> int:
    """How far `model` has applied `context`: in `partition` (a token naming its partition), or
    over all `partitions` (the lowest; an unwritten partition counts as 0)."""
    if partition is not None:
        return positions.get((model, context, partition), 0)
    return min(positions.get((model, context, p), 0) for p in range(partitions))
