"""How far a version has applied each partition (`partition_floors`, for `replay projections`
and a rebuild's swap), and the stream sequence the swap gives the new version.

The swap gives the new version live's context checkpoints. Their position is right, but live's
catch-up inside the swap folds events read from the store, which carry no stream sequence, and
with projector workers the context checkpoint was stale before anyway: the sequence would be 0,
and every partition consumer started from the new version's checkpoint (a member of a feed
going on alone after the swap held its batch, a worker taking over a partition) would read its
partition from the start of the stream, skipping it all as duplicates.

So the swap reads, before anything moves, the lowest stream sequence every partition has
reached: per partition the higher (by position) of its checkpoint and the context's. Every
message of the context's stream up to it has been applied by live, so none is skipped by a
consumer started after it, whether it reads all partitions or one (JetStream sequences are per
stream, shared by its partitions)."""

from collections.abc import Sequence

from eventlog.envelope import PARTITIONS
from projections.engine import Target
from projections.redis_target import RedisDocumentTarget
from projections.sql_target import SqlTarget
from readmodels.checkpoints import Checkpoint
from readmodels.partition_checkpoints import read_partition_checkpoints


def partition_floors(target: Target, context: str) -> list[Checkpoint]:
    """Per partition, how far `target` (a version's target, without a lease) has applied the
    context: the higher (by position) of the partition's checkpoint (a worker's) and the
    context's (the single projector's)."""
    whole = target.checkpoint(context)
    partitions = _partition_checkpoints(target, context)
    return [
        max(whole, partitions.get(p, Checkpoint()), key=lambda c: c.position)
        for p in range(PARTITIONS)
    ]


def stream_seq_reached(floors: Sequence[Checkpoint]) -> int:
    """The stream sequence up to which every message of the context's stream was applied,
    given the `partition_floors`."""
    return min(floor.stream_seq for floor in floors)


def _partition_checkpoints(target: Target, context: str) -> dict[int, Checkpoint]:
    p = target.projection
    if isinstance(target, RedisDocumentTarget):
        layout = target.layout
        keys = [
            key(p.name, p.version, context, n)
            for n in range(PARTITIONS)
            for key in (layout.partition_checkpoint_key, layout.partition_stream_seq_key)
        ]
        values = target.redis.mget(keys)
        return {
            n: Checkpoint(int(values[2 * n] or 0), int(values[2 * n + 1] or 0))
            for n in range(PARTITIONS)
            if values[2 * n] is not None
        }
    if isinstance(target, SqlTarget):
        with target.db.transaction(write=False) as tx:
            return read_partition_checkpoints(tx, p.name, p.version, context)
    return {}
