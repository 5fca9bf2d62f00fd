"""The tables every SQL read database has besides the models' own (`readmodels.tables`):
checkpoints, dead letters, the version pointer and registry, the generic document tables."""

from readmodels.checkpoints import CHECKPOINTS
from readmodels.partition_checkpoints import PARTITION_CHECKPOINTS
from readmodels.sql import Column, Index, Table, Tx
from readmodels.versions import VERSION_TABLES

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

SHARED_TABLES = (CHECKPOINTS, PARTITION_CHECKPOINTS, DEAD_LETTERS, *VERSION_TABLES)
DOCUMENT_TABLES = (HASHES, SORTED_SETS)


def create_tables(tx: Tx, tables: tuple[Table, ...]) -> None:
    tx.dialect.schema_lock(tx)
    for table in tables:
        for statement in tx.dialect.create_table(table):
            tx.execute(statement)
