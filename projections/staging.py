"""Backfilling a stack read model through a local SQLite file, then moving it in bulk.

A shadow in PostgreSQL or Redis written event by event costs a round trip per statement or
script call. The backfill instead folds the log into a staging SQLite file (the same projection
code, on the embedded mode's tables), which is resumable like any target (its checkpoints), and
then moves the result into the real shadow in bulk: `COPY` into the PostgreSQL tables, with the
checkpoints in the same transaction; pipelined `HSET` / `ZADD` into Redis, then the checkpoint
keys (writes of final values, so moving again after a crash is harmless). Dead letters parked
while staging move to the read database. The shadow's checkpoint > 0 means "moved"; the rebuild
then continues on the real shadow (catch-up, verify, swap).
"""

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from projections import dead_letters
from projections.engine import Target
from projections.model import Message, Park, Projection
from projections.redis_target import RedisDocumentTarget
from projections.sql_target import SqlDocumentTarget, SqlProjectionTarget
from readmodels.checkpoints import Checkpoint, write_checkpoint
from readmodels.sql import PostgresDatabase, SqlDatabase, SQLiteDatabase, Table

PAGE = 10_000


def stageable(target: Target) -> bool:
    """Worth staging: a shadow in PostgreSQL or Redis."""
    if isinstance(target, RedisDocumentTarget):
        return True
    return isinstance(target, SqlProjectionTarget) and isinstance(target.db, PostgresDatabase)


def staging_path(directory: Path, projection: Projection) -> Path:
    return directory / f"rebuild-{projection.name}-v{projection.version}.sqlite"


def transfer(staged: Target, shadow: Target, contexts: tuple[str, ...]) -> None:
    """Move the staged model, its dead letters and checkpoints into the (empty) shadow."""
    assert isinstance(staged, SqlProjectionTarget | SqlDocumentTarget)
    checkpoints = {context: staged.checkpoint(context) for context in contexts}
    parked = _parked(staged.db, staged.projection)
    if isinstance(shadow, RedisDocumentTarget):
        _to_redis(staged.db, shadow)
        _park(shadow.dead_letter_db, shadow.projection, parked)
        p = shadow.projection
        shadow.redis.mset(
            {
                key: value
                for context, checkpoint in checkpoints.items()
                for key, value in (
                    (shadow.layout.checkpoint_key(p.name, p.version, context), checkpoint.position),
                    (shadow.layout.stream_seq_key(p.name, p.version, context), 0),
                )
            }
        )
        return
    assert isinstance(shadow, SqlProjectionTarget)
    assert isinstance(staged, SqlProjectionTarget)
    sql = shadow.projection
    with shadow.db.transaction() as tx:
        for source, table in zip(staged.tables, shadow.tables, strict=True):
            tx.execute(f"DELETE FROM {table.name}")  # noqa: S608 - a partial earlier move
            tx.copy_rows(table.name, table.column_names, _rows(staged.db, source))
        _park_in(tx, sql, parked)
        for context, checkpoint in checkpoints.items():
            write_checkpoint(tx, sql.name, sql.version, context, Checkpoint(checkpoint.position))


def _rows(db: SqlDatabase, table: Table) -> Iterator[tuple[Any, ...]]:
    """Every row of a staged table, in pages (rowid order; the file is ours alone)."""
    after = 0
    columns = ", ".join(table.column_names)
    while True:
        with db.transaction(write=False) as tx:
            rows = tx.query(
                f"SELECT rowid, {columns} FROM {table.name}"  # noqa: S608 - our names
                " WHERE rowid > ? ORDER BY rowid LIMIT ?",
                [after, PAGE],
            )
        for row in rows:
            yield row[1:]
        if len(rows) < PAGE:
            return
        after = int(rows[-1][0])


def _to_redis(db: SqlDatabase, shadow: RedisDocumentTarget) -> None:
    p = shadow.projection
    prefix = shadow.layout.prefix(p.name, p.version)
    hashes = _generic(db, "rm_hashes", ("key", "field", "value"), p)
    scores = _generic(db, "rm_sorted_sets", ("key", "member", "score"), p)
    pipe = shadow.redis.pipeline(transaction=False)
    for batch in hashes:
        grouped: dict[str, dict[str, str]] = defaultdict(dict)
        for key, field, value in batch:
            grouped[str(key)][str(field)] = str(value)
        for key, fields in grouped.items():
            pipe.hset(prefix + key, mapping=fields)  # type: ignore[arg-type]
        pipe.execute()
    for batch in scores:
        for key, member, score in batch:
            pipe.zadd(prefix + str(key), {str(member): int(score)})
        pipe.execute()


def _generic(
    db: SqlDatabase, table: str, columns: tuple[str, str, str], projection: Projection
) -> Iterator[list[tuple[Any, ...]]]:
    after = 0
    while True:
        with db.transaction(write=False) as tx:
            rows = tx.query(
                f"SELECT rowid, {', '.join(columns)} FROM {table}"  # noqa: S608 - our names
                " WHERE projection = ? AND version = ? AND rowid > ? ORDER BY rowid LIMIT ?",
                [projection.name, projection.version, after, PAGE],
            )
        if rows:
            yield [row[1:] for row in rows]
        if len(rows) < PAGE:
            return
        after = int(rows[-1][0])


def _parked(db: SqlDatabase, projection: Projection) -> list[dead_letters.DeadLetter]:
    found: list[dead_letters.DeadLetter] = []
    after = 0
    while True:
        with db.transaction(write=False) as tx:
            page = dead_letters.listing(
                tx, projection=projection.name, status=None, after_id=after, limit=1000
            )
        found += [letter for letter in page if letter.version == projection.version]
        if len(page) < 1000:
            return found
        after = page[-1].id


def _park(db: SqlDatabase, projection: Projection, letters: list[dead_letters.DeadLetter]) -> None:
    if letters:
        with db.transaction() as tx:
            _park_in(tx, projection, letters)


def _park_in(tx: Any, projection: Projection, letters: list[dead_letters.DeadLetter]) -> None:
    by_context: dict[str, list[Park]] = defaultdict(list)
    for letter in letters:
        by_context[letter.context].append(
            Park(Message(letter.envelope), letter.error, letter.attempts)
        )
    for context, parks in by_context.items():
        dead_letters.insert(tx, projection.name, projection.version, context, parks)


def open_staging(directory: Path, projection: Projection) -> SQLiteDatabase:
    directory.mkdir(parents=True, exist_ok=True)
    return SQLiteDatabase(staging_path(directory, projection))


def remove_staging(directory: Path, projection: Projection) -> None:
    path = staging_path(directory, projection)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
