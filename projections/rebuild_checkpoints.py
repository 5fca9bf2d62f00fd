"""The checkpoints a rebuild's swap reads from the live version and gives the new one
(projections.rebuild), whichever mode the projector runs in.

A live version's progress is its context checkpoint (the single projector's) together with
its partition checkpoints (projector workers', readmodels.partition_checkpoints): partition NN
has applied up to the higher of the two. The swap catches live up from the lowest of those
(the target's commit skips what a partition has applied already) to the heads, which moves the
context checkpoint there. The new version then gets that position, and as stream sequence the
lowest the partitions had reached before the catch-up: every message of the context stream up
to it was applied by live, so none is skipped by a consumer started after it, whether it reads
all partitions or one (JetStream sequences are per stream, shared by its partitions)."""

from collections.abc import Mapping

from eventlog.envelope import PARTITIONS
from projections.engine import Target
from projections.redis_target import RedisDocumentTarget
from projections.sql_target import SqlTarget
from readmodels.checkpoints import Checkpoint, write_checkpoint
from readmodels.partition_checkpoints import read_partition_checkpoints
from readmodels.sql import Tx


def applied(target: Target, context: str) -> list[Checkpoint]:
    """How far each partition of `context` has been applied in `target` (a version's target
    without a lease): the higher of the context checkpoint and the partition's."""
    whole = target.checkpoint(context)
    partitions = _partition_checkpoints(target, context)
    return [
        max(whole, partitions.get(p, Checkpoint()), key=lambda c: c.position)
        for p in range(PARTITIONS)
    ]


def lowest(checkpoints: list[Checkpoint]) -> Checkpoint:
    """The position and the stream sequence every partition has reached."""
    return Checkpoint(min(c.position for c in checkpoints), min(c.stream_seq for c in checkpoints))


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


def adopt(tx: Tx, shadow: Target, positions: Mapping[str, Checkpoint]) -> None:
    """Give the shadow these context checkpoints (in `tx` for a SQL model, which commits with
    the pointer's flip)."""
    p = shadow.projection
    for context, checkpoint in positions.items():
        if isinstance(shadow, RedisDocumentTarget):
            layout = shadow.layout
            shadow.redis.mset(
                {
                    layout.checkpoint_key(p.name, p.version, context): checkpoint.position,
                    layout.stream_seq_key(p.name, p.version, context): checkpoint.stream_seq,
                }
            )
        else:
            write_checkpoint(tx, p.name, p.version, context, checkpoint)
