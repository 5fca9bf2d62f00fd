"""A relational projection's batch written with one statement per table and kind of change
(PostgreSQL, in the batch's pipelined transaction; see projections.row_batch for the fold).

Per table: the rows the batch reads, in one `SELECT … WHERE key IN unnest(…)`; then
`DELETE … USING unnest(…)`, `UPDATE … FROM unnest(…)`, `INSERT … SELECT FROM unnest(…)` and, for
counters only added to, `INSERT … SELECT FROM unnest(…) ON CONFLICT … DO UPDATE SET c = c + …`.
Each column travels as one array parameter, cast to its column's type, so a batch costs a few
statements whatever its size. A delete or update that does not meet every row it should fails
the flush (PipelineFailed), so the batch runs again statement by statement, as a failed
statement does (readmodels.pipeline).
"""

from collections.abc import Callable, Sequence
from functools import cache, lru_cache

from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.row_batch import BatchFailed, Call, Changes, RecordingRows, Row, RowFold
from readmodels.dialects import PostgresDialect
from readmodels.pipeline import PipelineFailed
from readmodels.sql import Table, Tx

_ARRAY_TYPES = {
    kind: name for kind, name in PostgresDialect.types.items() if kind not in ("json", "serial")
}
"""Column types a batch writes as arrays (a table with another type runs per statement)."""


@cache
def foldable(projection: SqlProjection) -> bool:
    """Whether the projection's batches can be folded: its rows are named by their primary keys,
    its tables have no other unique key (whose checks depend on the order of the writes), and
    every column type can travel as an array."""
    return all(
        not table.unique
        and projection.row_keys.get(table.name) == table.primary_key
        and all(column.type in _ARRAY_TYPES for column in table.columns)
        for table in projection.tables
    )


def apply_batch(tx: Tx, projection: SqlProjection, envelopes: Sequence[EventEnvelope]) -> None:
    """Apply the events' effects on the projection's tables (version 1 names: `tx` renames).
    PipelineFailed if an event fails (run the batch statement by statement to find it);
    NotFoldable if the batch must run statement by statement anyway (nothing written)."""
    tables = {table.name: table for table in projection.tables}
    fold = RowFold(
        {name: table.primary_key for name, table in tables.items()},
        {name: table.column_names for name, table in tables.items()},
    )
    try:
        calls = _record(projection, envelopes)
        reads = fold.reads(calls)
    except (BatchFailed, KeyError, TypeError) as failed:
        raise PipelineFailed(str(failed)) from failed
    for name, keys in reads.items():
        fold.loaded(name, keys, _load(tx, tables[name], keys))
    try:
        fold.replay(calls)
    except BatchFailed as failed:
        raise PipelineFailed(str(failed)) from failed
    for name, changes in fold.changes().items():
        _write(tx, tables[name], changes)


def _record(projection: SqlProjection, envelopes: Sequence[EventEnvelope]) -> list[Call]:
    rows = RecordingRows()
    for envelope in envelopes:
        try:
            projection.project(rows, envelope)
        except Exception as error:
            raise BatchFailed(f"position {envelope.position}: {error!r}") from error
    return rows.calls


def _load(tx: Tx, table: Table, keys: list[tuple[object, ...]]) -> list[Row]:
    columns = table.column_names
    found = tx.query(_select(table), _arrays(table.primary_key, keys))
    return [dict(zip(columns, row, strict=True)) for row in found]


def _write(tx: Tx, table: Table, changes: Changes) -> None:
    key = table.primary_key
    if changes.deletes:
        deletes = changes.deletes
        tx.expect(_delete(table), _arrays(key, deletes), len(deletes), _short(table, "delete"))
    if changes.updates:
        updates = changes.updates
        params = _row_arrays(table.column_names, updates)
        tx.expect(_update(table), params, len(updates), _short(table, "update"))
    if changes.inserts:
        tx.execute(
            _insert(table, table.column_names), _row_arrays(table.column_names, changes.inserts)
        )
    for columns, rows in changes.adds.items():
        tx.execute(_accumulate(table, columns), _row_arrays(columns, rows))


def _short(table: Table, change: str) -> Callable[[], Exception]:
    return lambda: BatchFailed(f"a batched {change} of {table.name} missed rows")


def _arrays(columns: Sequence[str], keys: list[tuple[object, ...]]) -> list[list[object]]:
    return [list(values) for values in zip(*keys, strict=True)] or [[] for _ in columns]


def _row_arrays(columns: Sequence[str], rows: list[Row]) -> list[list[object]]:
    return [[row[column] for row in rows] for column in columns]


# Statements are built from the projections' own table and column names, never from input.


def _unnest(table: Table, columns: Sequence[str]) -> str:
    types = {column.name: _ARRAY_TYPES[column.type] for column in table.columns}
    # `%b`: psycopg's placeholder for a binary parameter (not `?`: arrays dump at half the CPU
    # in binary, measured); these statements only ever run on PostgreSQL.
    arrays = ", ".join(f"%b::{types[column]}[]" for column in columns)
    return f"unnest({arrays}) AS v({', '.join(columns)})"


def _matches(table: Table) -> str:
    return " AND ".join(f"{table.name}.{column} = v.{column}" for column in table.primary_key)


@lru_cache(maxsize=128)
def _select(table: Table) -> str:
    columns = ", ".join(f"{table.name}.{column}" for column in table.column_names)
    source = _unnest(table, table.primary_key)
    return f"SELECT {columns} FROM {table.name} JOIN {source} ON {_matches(table)}"  # noqa: S608


@lru_cache(maxsize=128)
def _delete(table: Table) -> str:
    source = _unnest(table, table.primary_key)
    return f"DELETE FROM {table.name} USING {source} WHERE {_matches(table)}"  # noqa: S608


@lru_cache(maxsize=128)
def _update(table: Table) -> str:
    changed = [c for c in table.column_names if c not in table.primary_key]
    sets = ", ".join(f"{column} = v.{column}" for column in changed)
    source = _unnest(table, table.column_names)
    return f"UPDATE {table.name} SET {sets} FROM {source} WHERE {_matches(table)}"  # noqa: S608


@lru_cache(maxsize=128)
def _insert(table: Table, columns: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    return f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {_unnest(table, columns)}"  # noqa: S608


@lru_cache(maxsize=128)
def _accumulate(table: Table, columns: tuple[str, ...]) -> str:
    key = table.primary_key
    sums = ", ".join(
        f"{column} = {table.name}.{column} + excluded.{column}"
        for column in columns
        if column not in key
    )
    return f"{_insert(table, columns)} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sums}"
