"""A rebuild's backfill in bulk: the log read in large pages (`eventlog.bulk_read`), folded per
key in memory, written to the shadow with `COPY` (PostgreSQL, or `executemany` on SQLite) or
Redis pipelines.

Each event runs the projection's own code, on memory instead of a store: a relational model's
`project` on :class:`~projections.bulk_memory.MemoryRows`, a document model's `operations` on
:class:`~projections.bulk_memory.MemoryDocuments`. Memory is bounded by `limit` keys: past it the
least recently touched half is spilled to the shadow (see `projections.bulk_memory`). Events a
person skipped in the live version are left out; an event the projection fails on is undone and
parked, its aggregate's later events parked behind it, as the engine does live.

Every `checkpoint_pages` pages, and at the end of each context's log, everything folded is
written out, then the dead letters and the shadow's checkpoint: the shadow then holds the log up
to it. A rebuild that dies after a checkpoint resumes from it, event by event
(`Rebuilder._backfill`); one that dies before the first clears the shadow and folds again.
"""

import gc
import logging
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from redis import Redis

from eventlog.bulk_read import envelope_pages
from eventlog.envelope import EnvelopeSource, EventEnvelope
from projections import dead_letters
from projections.bulk_memory import (
    HASH,
    BackingFailed,
    MemoryDocuments,
    MemoryRows,
    Spilled,
    WriteBackCache,
)
from projections.document_ops import execute
from projections.engine import Target
from projections.model import Message, OpsProjection, Park, SqlProjection, describe
from projections.redis_target import RedisDocumentTarget
from projections.sql_target import SqlProjectionTarget
from readmodels.checkpoints import Checkpoint, write_checkpoint
from readmodels.sql import SqlDatabase, Table

KEYS_IN_MEMORY = 100_000
"""Rows or documents held before the least recently touched half is spilled to the shadow."""
CHECKPOINT_PAGES = 10
"""Pages folded between two checkpoints of the shadow (everything written, then the position)."""
PIPELINE = 1000

logger = logging.getLogger("strata.projections")


class Progress(Protocol):
    def advance(self, count: int) -> None: ...


def bulk_capable(target: Target) -> bool:
    """A shadow the bulk backfill writes: relational tables, or documents in Redis."""
    return isinstance(target, SqlProjectionTarget | RedisDocumentTarget)


class SqlBacking:
    """A relational shadow's tables, named for its version."""

    def __init__(self, target: SqlProjectionTarget) -> None:
        projection = target.projection
        self._db: SqlDatabase = target.db
        self._keys = projection.row_keys
        self._tables: dict[str, Table] = {
            table.name: versioned
            for table, versioned in zip(projection.tables, target.tables, strict=True)
        }

    def clear(self) -> None:
        with self._db.transaction() as tx:
            for table in self._tables.values():
                tx.execute(f"DELETE FROM {table.name}")  # noqa: S608 - our names

    def load(self, table: str, key: Hashable) -> dict[str, Any] | None:
        stored = self._tables[table]
        with self._db.transaction(write=False) as tx:
            row = tx.query_one(_select(stored, self._keys[table]), list(_values(key)))
        return None if row is None else dict(zip(stored.column_names, row, strict=True))

    def write(self, spilled: Spilled) -> None:
        with self._db.transaction() as tx:
            for name, entries in spilled.items():
                table, key_columns = self._tables[name], self._keys[name]
                where = " AND ".join(f"{column} = ?" for column in key_columns)
                for key, _, stored in entries:
                    if stored:  # the shadow holds an older version of it
                        tx.execute(f"DELETE FROM {table.name} WHERE {where}", list(_values(key)))  # noqa: S608
                columns = table.column_names
                rows = (tuple(row.get(c) for c in columns) for _, row, _ in entries if row)
                tx.copy_rows(table.name, columns, rows)


def _select(table: Table, key: tuple[str, ...]) -> str:
    where = " AND ".join(f"{column} = ?" for column in key)
    return f"SELECT {', '.join(table.column_names)} FROM {table.name} WHERE {where}"  # noqa: S608


def _values(key: Hashable) -> tuple[Any, ...]:
    assert isinstance(key, tuple)
    return key


class RedisBacking:
    """A document shadow's keys in Redis (`rm:{<proj>:v<k>}:…`)."""

    def __init__(self, target: RedisDocumentTarget) -> None:
        p = target.projection
        self._redis: Redis = target.redis
        self._prefix = target.layout.prefix(p.name, p.version)

    def clear(self) -> None:
        unlink_prefix(self._redis, self._prefix)

    def load(self, table: str, key: Hashable) -> dict[str, Any] | None:
        name = self._prefix + str(key)
        redis: Any = self._redis  # replies are bytes, or text if the client decodes them
        if table == HASH:
            fields = redis.hgetall(name)
            return {_text(k): _text(v) for k, v in fields.items()} or None
        scored = redis.zrange(name, 0, -1, withscores=True)
        return {_text(member): int(score) for member, score in scored} or None

    def write(self, spilled: Spilled) -> None:
        pipe = self._redis.pipeline(transaction=False)
        queued = 0
        for table, entries in spilled.items():
            for key, value, _ in entries:  # documents are never deleted, fields never removed
                if table == HASH:
                    pipe.hset(self._prefix + str(key), mapping=value)
                else:
                    pipe.zadd(self._prefix + str(key), value)
                queued += 1
                if queued % PIPELINE == 0:
                    pipe.execute()
        pipe.execute()


def _text(reply: bytes | str) -> str:
    return reply.decode() if isinstance(reply, bytes) else reply


def unlink_prefix(redis: Redis, prefix: str) -> None:
    """Delete every key under `prefix` (SCAN + UNLINK, in batches)."""
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
    batch: list[Any] = []
    for key in redis.scan_iter(match=pattern, count=PIPELINE):
        batch.append(key)
        if len(batch) >= PIPELINE:
            redis.unlink(*batch)
            batch.clear()
    if batch:
        redis.unlink(*batch)


@contextmanager
def _rare_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often. The fold makes millions of short-lived,
    acyclic objects while it holds up to `KEYS_IN_MEMORY` rows: with the default thresholds the
    collections (which walk those rows) took a fifth of the `orders` fold (docs/benchmarks.md)."""
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


@dataclass
class _Fed:
    """One context's fold so far: events read, pages, the last position folded (the checkpoint
    to be), the events parked since the last checkpoint."""

    read: int = 0
    pages: int = 0
    last: int = 0
    parks: list[Park] = field(default_factory=list)


class BulkBackfill:
    def __init__(
        self,
        shadow: Target,
        *,
        page_size: int,
        limit: int = KEYS_IN_MEMORY,
        checkpoint_pages: int = CHECKPOINT_PAGES,
    ) -> None:
        self.shadow = shadow
        self.page_size = page_size
        self.checkpoint_pages = checkpoint_pages
        projection = shadow.projection
        self._backing: SqlBacking | RedisBacking
        self._fold: Callable[[EventEnvelope], None]
        if isinstance(shadow, SqlProjectionTarget):
            self._backing = SqlBacking(shadow)
            self.cache = WriteBackCache(self._backing, limit)
            rows = MemoryRows(self.cache, shadow.projection.row_keys)
            sql: SqlProjection = shadow.projection
            self._fold = lambda event: sql.project(rows, event)
        elif isinstance(shadow, RedisDocumentTarget) and isinstance(projection, OpsProjection):
            self._backing = RedisBacking(shadow)
            self.cache = WriteBackCache(self._backing, limit)
            documents = MemoryDocuments(self.cache)
            self._fold = lambda event: execute(projection.operations(event), documents)
        else:
            raise TypeError(f"no bulk backfill into {shadow!r}")

    def run(
        self,
        sources: Mapping[str, EnvelopeSource],
        until: Mapping[str, int],
        at: datetime | None,
        progress: Progress,
    ) -> int:
        """Fold each context's log up to `until` (events of timestamp ≤ `at`, if given) into
        the emptied shadow; the events read."""
        self._backing.clear()
        read = 0
        with _rare_collections():
            for context in self.shadow.projection.contexts:
                read += self._context(sources[context], context, until[context], at, progress)
        return read

    def _context(
        self,
        source: EnvelopeSource,
        context: str,
        until: int,
        at: datetime | None,
        progress: Progress,
    ) -> int:
        p = self.shadow.projection
        with self.shadow.dead_letter_db.transaction(write=False) as tx:
            skipped = dead_letters.skipped(tx, p.name, p.version, context, 1, until)
        fed, parked = _Fed(), dict[UUID, int]()
        for page in envelope_pages(source, context, 0, until, self.page_size):
            for envelope in page:
                if at is not None and envelope.timestamp > at:
                    continue
                if envelope.position not in skipped:
                    self._one(envelope, parked, fed.parks)
                fed.last = envelope.position
            fed.read += len(page)
            progress.advance(len(page))
            fed.pages += 1
            if fed.pages % self.checkpoint_pages == 0:
                self._checkpoint(context, fed)
        self._checkpoint(context, fed)
        return fed.read

    def _one(self, envelope: EventEnvelope, parked: dict[UUID, int], parks: list[Park]) -> None:
        head = parked.get(envelope.aggregate_id)
        if head is not None:
            parks.append(Park(Message(envelope), dead_letters.blocked_error(head), attempts=0))
            return
        self.cache.begin()
        try:
            self._fold(envelope)
        except BackingFailed:
            raise
        except Exception as error:  # noqa: BLE001 - whatever the projection raises parks it
            self.cache.rollback()
            parked[envelope.aggregate_id] = envelope.position
            parks.append(Park(Message(envelope), describe(error), attempts=1))
            logger.warning(
                "rebuild of %s parked %s.%s at position %d: %s",
                self.shadow.projection.label,
                envelope.aggregate_type,
                envelope.event_type,
                envelope.position,
                describe(error),
            )
            return
        self.cache.spill_if_full()

    def _checkpoint(self, context: str, fed: _Fed) -> None:
        """Write everything folded, the dead letters, then the checkpoint: the shadow holds the
        context's log up to it, and a rebuild resumed after a crash carries on from there."""
        self.cache.flush()
        p = self.shadow.projection
        with self.shadow.dead_letter_db.transaction() as tx:
            dead_letters.insert(tx, p.name, p.version, context, fed.parks)
            if isinstance(self.shadow, SqlProjectionTarget):
                write_checkpoint(tx, p.name, p.version, context, Checkpoint(fed.last))
        fed.parks.clear()
        if isinstance(self.shadow, RedisDocumentTarget):
            layout = self.shadow.layout
            self.shadow.redis.mset(
                {
                    layout.checkpoint_key(p.name, p.version, context): fed.last,
                    layout.stream_seq_key(p.name, p.version, context): 0,
                }
            )
