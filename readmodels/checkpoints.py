"""Checkpoints: the last applied position of each (read model, version, context), where they
are kept (`rm_checkpoints` in a SQL read database, `…:ckpt:<context>` keys in Redis) and how a
committed move is announced (PostgreSQL `NOTIFY rm_ckpt`, Redis `PUBLISH <root>:ckpt:db<n>`).

Projectors write them (`ensure_checkpoint`, `write_checkpoint`, the Redis script); the read API
reads them (`read_positions`, `redis_positions`) and listens to the announcements.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis

from readmodels.catalog import ReadModel
from readmodels.keys import RedisLayout
from readmodels.sql import Column, Table, Tx

CHECKPOINT_CHANNEL = "rm_ckpt"
"""PostgreSQL NOTIFY channel: a JSON payload per committed batch (see checkpoint_payload)."""

Positions = Mapping[tuple[str, str], int]
"""Checkpoints by (read model name, context); a missing entry means nothing applied yet (0)."""


@dataclass(frozen=True)
class Checkpoint:
    """The last applied position of one (projection, version, context), and its stream sequence
    (0: none yet, or the event was read from the event store rather than the stream)."""

    position: int = 0
    stream_seq: int = 0


CHECKPOINTS = Table(
    "rm_checkpoints",
    (
        Column("projection", "text", nullable=False),
        Column("version", "int", nullable=False),
        Column("context", "text", nullable=False),
        Column("position", "bigint", nullable=False),
        Column("stream_seq", "bigint", nullable=False),
        Column("updated_at", "timestamptz"),
    ),
    primary_key=("projection", "version", "context"),
)


def checkpoint_payload(projection: str, version: int, context: str, checkpoint: Checkpoint) -> str:
    """`{"projection": …, "version": …, "context": …, "position": …}` (NOTIFY and pub/sub)."""
    return json.dumps(
        {
            "projection": projection,
            "version": version,
            "context": context,
            "position": checkpoint.position,
        },
        separators=(",", ":"),
    )


def ensure_checkpoint(tx: Tx, projection: str, version: int, context: str) -> None:
    tx.execute(
        "INSERT INTO rm_checkpoints (projection, version, context, position, stream_seq,"
        " updated_at) VALUES (?, ?, ?, 0, 0, ?)"
        " ON CONFLICT (projection, version, context) DO NOTHING",
        [projection, version, context, datetime.now(UTC)],
    )


def read_checkpoint(
    tx: Tx, projection: str, version: int, context: str, *, lock: bool = False
) -> Checkpoint:
    """The checkpoint; with `lock`, the row stays locked until the transaction ends."""
    suffix = tx.dialect.for_update if lock else ""
    row = tx.query_one(
        "SELECT position, stream_seq FROM rm_checkpoints"  # noqa: S608 - a fixed suffix
        f" WHERE projection = ? AND version = ? AND context = ?{suffix}",
        [projection, version, context],
    )
    return Checkpoint() if row is None else Checkpoint(int(row[0]), int(row[1]))


def write_checkpoint(
    tx: Tx, projection: str, version: int, context: str, checkpoint: Checkpoint
) -> None:
    tx.expect(
        "UPDATE rm_checkpoints SET position = ?, stream_seq = ?, updated_at = ?"
        " WHERE projection = ? AND version = ? AND context = ?",
        [
            checkpoint.position,
            checkpoint.stream_seq,
            datetime.now(UTC),
            projection,
            version,
            context,
        ],
        1,
        lambda: LookupError(f"no checkpoint row for {projection}:v{version}:{context}"),
    )
    tx.dialect.notify(
        tx, CHECKPOINT_CHANNEL, checkpoint_payload(projection, version, context, checkpoint)
    )


def probe_checkpoints(tx: Tx) -> None:
    """Raise unless the checkpoint table answers (a reader's readiness check: the projector has
    created the read database)."""
    tx.query("SELECT position FROM rm_checkpoints LIMIT 1")


def read_positions(tx: Tx, models: Iterable[ReadModel]) -> Positions:
    """The checkpoints of `models` (each at the version it names) in a SQL read database."""
    wanted = {(model.name, model.version) for model in models}
    if not wanted:
        return {}
    names = sorted({name for name, _ in wanted})
    rows = tx.query(
        "SELECT projection, version, context, position FROM rm_checkpoints"  # noqa: S608
        f" WHERE projection IN ({', '.join('?' * len(names))})",
        names,
    )
    return {
        (name, context): int(position)
        for name, version, context, position in rows
        if (name, version) in wanted
    }


def redis_positions(redis: Redis, layout: RedisLayout, models: Iterable[ReadModel]) -> Positions:
    """The checkpoints of `models` (each at the version it names) in Redis."""
    pairs = [(model, context) for model in models for context in model.contexts]
    if not pairs:
        return {}
    keys = [layout.checkpoint_key(model.name, model.version, context) for model, context in pairs]
    values = redis.mget(keys)
    return {
        (model.name, context): int(value)
        for (model, context), value in zip(pairs, values, strict=True)
        if value is not None
    }
