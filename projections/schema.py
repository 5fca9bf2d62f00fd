"""The tables every SQL read database has: checkpoints, dead letters, generic documents."""

import json
from datetime import UTC, datetime

from projections.model import Checkpoint
from projections.sql import Column, Index, Table, Tx
from projections.versions import VERSION_TABLES

CHECKPOINT_CHANNEL = "rm_ckpt"
"""PostgreSQL NOTIFY channel: a JSON payload per committed batch (see checkpoint_payload)."""


def redis_checkpoint_channel(db: int, root: str = "rm") -> str:
    """Redis pub/sub channel of the checkpoint moves of the documents `<root>:…` in Redis DB
    `db`: `rm:ckpt:db<n>`. Pub/sub is server-wide, whatever the DB number, so the channel names
    the key space it is about; same payload as NOTIFY."""
    return f"{root}:ckpt:db{db}"


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

DEAD_LETTERS = Table(
    "dead_letters",
    (
        Column("id", "serial", nullable=False),
        Column("projection", "text", nullable=False),
        Column("version", "int", nullable=False),
        Column("context", "text", nullable=False),
        Column("position", "bigint", nullable=False),
        Column("stream_seq", "bigint"),
        Column("aggregate_id", "uuid", nullable=False),
        Column("event_type", "text", nullable=False),
        Column("error", "text", nullable=False),
        Column("attempts", "int", nullable=False),
        Column("envelope", "json", nullable=False),
        Column("status", "text", nullable=False),
        Column("parked_at", "timestamptz", nullable=False),
    ),
    primary_key=("id",),
    unique=(("projection", "version", "context", "position"),),
    indexes=(
        Index(
            "dead_letters_parked",
            ("projection", "version", "context", "aggregate_id", "position"),
            where="status = 'parked'",
        ),
    ),
)

HASHES = Table(
    "rm_hashes",
    (
        Column("projection", "text", nullable=False),
        Column("version", "int", nullable=False),
        Column("key", "text", nullable=False),
        Column("field", "text", nullable=False),
        Column("value", "text", nullable=False),
    ),
    primary_key=("projection", "version", "key", "field"),
)

SORTED_SETS = Table(
    "rm_sorted_sets",
    (
        Column("projection", "text", nullable=False),
        Column("version", "int", nullable=False),
        Column("key", "text", nullable=False),
        Column("member", "text", nullable=False),
        Column("score", "bigint", nullable=False),
    ),
    primary_key=("projection", "version", "key", "member"),
    indexes=(Index("rm_sorted_sets_by_score", ("projection", "version", "key", "score")),),
)

SHARED_TABLES = (CHECKPOINTS, DEAD_LETTERS, *VERSION_TABLES)
DOCUMENT_TABLES = (HASHES, SORTED_SETS)


def create_tables(tx: Tx, tables: tuple[Table, ...]) -> None:
    tx.dialect.schema_lock(tx)
    for table in tables:
        for statement in tx.dialect.create_table(table):
            tx.execute(statement)


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
    changed = tx.execute(
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
    )
    if changed != 1:
        raise LookupError(f"no checkpoint row for {projection}:v{version}:{context}")
    tx.dialect.notify(
        tx, CHECKPOINT_CHANNEL, checkpoint_payload(projection, version, context, checkpoint)
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
