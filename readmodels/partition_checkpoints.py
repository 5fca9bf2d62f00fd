"""Per-partition checkpoints: the last applied position of each (read model, version, context,
partition), for projector workers that split a context's `pNN` partitions between them
(projections/leases.py).

A partition's events reach its worker in position order (one subject per partition), so its
checkpoint is exact for that partition, whatever the other partitions have reached. Each write
carries the writer's lease epoch: a row is only moved by an epoch at least as high as the one
that last moved it, so a worker that lost its lease (a newer holder has committed) is refused
(LeaseLost) and nothing of its batch is written (the caller's transaction rolls back).

Read-your-writes with partitions: a command's position belongs to its aggregate's partition
(its token says which, eventlog.position_tokens), so a read waits until that one partition has
applied it (`with_partitions`: the key `(model, <context>:pNN)`). A context's position over all
partitions (the `X-Read-Position` header, a bare token) is the lowest partition's: never more
than every partition has applied, but held back by an idle partition, which is why a token
names its partition.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from redis import Redis

from eventlog.envelope import PARTITIONS
from readmodels.catalog import ReadModel
from readmodels.checkpoints import (
    CHECKPOINT_CHANNEL,
    Checkpoint,
    Positions,
    checkpoint_payload,
    redis_positions,
)
from readmodels.keys import RedisLayout
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


def read_partition_checkpoints(
    tx: Tx, projection: str, version: int, context: str
) -> dict[int, Checkpoint]:
    """Every partition's checkpoint of a version's context (missing: nothing applied)."""
    rows = tx.query(
        "SELECT partition, position, stream_seq FROM rm_partition_checkpoints"
        " WHERE projection = ? AND version = ? AND context = ?",
        [projection, version, context],
    )
    return {int(row[0]): Checkpoint(int(row[1]), int(row[2])) for row in rows}


def lock_partition(
    tx: Tx, projection: str, version: int, context: str, partition: int, epoch: int
) -> Checkpoint:
    """Start a worker's batch: how far the partition has been applied, with its row locked.

    The partition's row is read `FOR UPDATE` (LeaseLost at once if a newer epoch wrote it), the
    context's row `FOR SHARE` (a single projector's batch holds it `FOR UPDATE`: the two never
    interleave while modes change over), and the higher of the two is the floor: a context
    checkpoint covers every partition. On PostgreSQL, batches of one projection are then
    serialised (`pg_advisory_xact_lock`): two partitions' batches can touch the same rows
    (daily totals, leaderboards), and one at a time they cannot deadlock."""
    row = tx.query_one(
        "SELECT position, stream_seq, epoch FROM rm_partition_checkpoints"  # noqa: S608
        " WHERE projection = ? AND version = ? AND context = ? AND partition = ?"
        f"{tx.dialect.for_update}",
        [projection, version, context, partition],
    )
    if row is not None and int(row[2]) > epoch:
        raise _lease_lost(projection, version, context, partition, epoch)
    mine = Checkpoint() if row is None else Checkpoint(int(row[0]), int(row[1]))
    share = " FOR SHARE" if tx.dialect.for_update else ""
    whole = tx.query_one(
        "SELECT position, stream_seq FROM rm_checkpoints"  # noqa: S608 - a fixed suffix
        f" WHERE projection = ? AND version = ? AND context = ?{share}",
        [projection, version, context],
    )
    if tx.dialect.name == "postgresql":
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext(?))", [f"rm batch {projection}:{version}"]
        )
    if whole is not None and int(whole[0]) > mine.position:
        return Checkpoint(int(whole[0]), int(whole[1]))
    return mine


def lock_context(
    tx: Tx, projection: str, version: int, context: str
) -> tuple[Checkpoint, dict[int, int]]:
    """Start a single projector's batch, in one round trip: the context's checkpoint with its
    row locked `FOR UPDATE`, and each partition's checkpoint (what workers applied before, to
    be skipped)."""
    lock = " FOR UPDATE OF c" if tx.dialect.for_update else ""
    rows = tx.query(
        "SELECT c.position, c.stream_seq, p.partition, p.position FROM rm_checkpoints c"  # noqa: S608
        " LEFT JOIN rm_partition_checkpoints p ON p.projection = c.projection"
        " AND p.version = c.version AND p.context = c.context"
        f" WHERE c.projection = ? AND c.version = ? AND c.context = ?{lock}",
        [projection, version, context],
    )
    if not rows:
        return Checkpoint(), {}
    checkpoint = Checkpoint(int(rows[0][0]), int(rows[0][1]))
    return checkpoint, {int(row[2]): int(row[3]) for row in rows if row[2] is not None}


def _lease_lost(
    projection: str, version: int, context: str, partition: int, epoch: int
) -> LeaseLost:
    return LeaseLost(
        f"{projection}:v{version}:{context}:p{partition:02d}: a lease newer than epoch"
        f" {epoch} has written this checkpoint"
    )


def write_partition_checkpoint(
    tx: Tx,
    projection: str,
    version: int,
    context: str,
    partition: int,
    checkpoint: Checkpoint,
    epoch: int,
) -> None:
    """Move (or first write) the checkpoint under lease `epoch`; LeaseLost if a newer epoch
    moved it."""
    tx.expect(
        "INSERT INTO rm_partition_checkpoints (projection, version, context, partition, position,"
        " stream_seq, epoch, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (projection, version, context, partition) DO UPDATE"
        " SET position = excluded.position, stream_seq = excluded.stream_seq,"
        " epoch = excluded.epoch, updated_at = excluded.updated_at"
        " WHERE rm_partition_checkpoints.epoch <= excluded.epoch",
        [
            projection,
            version,
            context,
            partition,
            checkpoint.position,
            checkpoint.stream_seq,
            epoch,
            datetime.now(UTC),
        ],
        1,
        lambda: _lease_lost(projection, version, context, partition, epoch),
    )
    tx.dialect.notify(
        tx,
        CHECKPOINT_CHANNEL,
        checkpoint_payload(projection, version, partition_slot(context, partition), checkpoint),
    )


def partition_slot(context: str, partition: int) -> str:
    """The key of one partition's position in `Positions`: (model, `<context>:pNN`)."""
    return f"{context}:p{partition:02d}"


def with_partitions(
    positions: Positions,
    partitions: PartitionPositions,
    models: Iterable[ReadModel],
    count: int = PARTITIONS,
) -> Positions:
    """What each model has applied of each context, from both kinds of checkpoint.

    A context checkpoint (the single projector's) covers every partition up to it; a partition
    checkpoint (a worker's) covers its partition. So partition NN has applied up to the higher
    of the two (key `(model, <context>:pNN)`), and the context up to the higher of its own and
    the lowest over its partitions (key `(model, <context>)`, as before)."""
    merged = dict(positions)
    for model in models:
        for context in model.contexts:
            whole = positions.get((model.name, context), 0)
            each = [max(whole, partitions.get((model.name, context, p), 0)) for p in range(count)]
            merged[(model.name, context)] = min(each)
            for p, position in enumerate(each):
                merged[(model.name, partition_slot(context, p))] = position
    return merged


def read_all_positions(tx: Tx, models: Iterable[ReadModel]) -> Positions:
    """`read_positions` with the partition checkpoints folded in (`with_partitions`), in one
    query (a read, and a waiting read at each announcement, reads them)."""
    chosen = list(models)
    wanted = {(m.name, m.version) for m in chosen}
    if not wanted:
        return {}
    names = sorted({name for name, _ in wanted})
    among = ", ".join("?" * len(names))
    rows = tx.query(
        "SELECT projection, version, context, -1, position FROM rm_checkpoints"  # noqa: S608
        f" WHERE projection IN ({among}) UNION ALL"
        " SELECT projection, version, context, partition, position"
        f" FROM rm_partition_checkpoints WHERE projection IN ({among})",
        [*names, *names],
    )
    whole: dict[tuple[str, str], int] = {}
    partitions: dict[tuple[str, str, int], int] = {}
    for name, version, context, partition, position in rows:
        if (name, version) not in wanted:
            continue
        if partition == -1:
            whole[(str(name), str(context))] = int(position)
        else:
            partitions[(str(name), str(context), int(partition))] = int(position)
    return with_partitions(whole, partitions, chosen)


def redis_all_positions(
    redis: Redis, layout: RedisLayout, models: Iterable[ReadModel], count: int = PARTITIONS
) -> Positions:
    """`redis_positions` with the partition checkpoints folded in (`with_partitions`)."""
    chosen = list(models)
    slots = [(m, c, p) for m in chosen for c in m.contexts for p in range(count)]
    keys = [layout.partition_checkpoint_key(m.name, m.version, c, p) for m, c, p in slots]
    values = redis.mget(keys) if keys else []
    partitions = {
        (m.name, c, p): int(value)
        for (m, c, p), value in zip(slots, values, strict=True)
        if value is not None
    }
    return with_partitions(redis_positions(redis, layout, chosen), partitions, chosen, count)
