"""What a relational projection does to its rows, whatever holds them.

A `SqlProjection` states each event's effect as calls on :class:`Rows`: insert a row, update or
delete the one row a key names, add to counters (creating the row if needed), read a row. The
live projector runs them as SQL statements in the batch's transaction (:class:`SqlRows`); a bulk
rebuild runs the very same calls on rows held in memory (`projections.bulk_memory`) and writes
the folded rows with `COPY`. So each projection's logic is written once, for both paths.

Keys are mappings of column to value; a table is keyed by its primary key unless its projection
names another unique key it looks rows up by (`SqlProjection.row_keys`).

A value a write needs from another row is best given as a :class:`Lookup` rather than read with
`get` first: SQL reads it inside the write's own statement, so a pipelined batch
(readmodels.pipeline) sends it without waiting for a result. (`get` stays correct when pipelined:
a query waits for the statements sent before it, it just costs that round trip.)
"""

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from math import prod
from typing import Any

from readmodels.sql import Tx

Key = Mapping[str, object]
Values = Mapping[str, object]


class MissingRow(LookupError):
    """An event refers to a row its projection never wrote."""


class DuplicateRow(LookupError):
    """An event inserts a row whose key its projection wrote before."""


@dataclass(frozen=True, eq=False)
class Lookup:
    """A value read, as the write runs, from the row `key` names in `table`: `column`, or the
    product of `columns` times `sign`. In SQL a subquery of the write (a missing row reads as
    NULL, which a NOT NULL column refuses); in memory a read (MissingRow if there is none)."""

    table: str
    key: Key
    columns: tuple[str, ...]
    sign: int = 1
    what: str | None = None


Amount = int | Lookup
"""What a counter is changed by."""


class Rows(ABC):
    @abstractmethod
    def get(self, table: str, key: Key, columns: Sequence[str]) -> dict[str, Any] | None:
        """`columns` of the row `key` names, or None if there is none."""

    @abstractmethod
    def insert(self, table: str, row: Values) -> None:
        """A new row (columns not given are NULL)."""

    @abstractmethod
    def update(
        self,
        table: str,
        key: Key,
        *,
        set: Values | None = None,
        add: Mapping[str, Amount] | None = None,
        what: str | None = None,
    ) -> None:
        """Set columns to values and add to others in the row `key` names (MissingRow if none)."""

    @abstractmethod
    def delete(self, table: str, key: Key, *, what: str | None = None) -> None:
        """Delete the row `key` names (MissingRow if none)."""

    @abstractmethod
    def accumulate(self, table: str, key: Key, add: Mapping[str, Amount]) -> None:
        """Add to the counters of the row `key` names, inserting it with `add` if there is none
        (`add` names every other column)."""

    def resolved(self, values: Mapping[str, object]) -> dict[str, Any]:
        """`values` with each :class:`Lookup` replaced by what it reads (for implementations
        that cannot read inside a write)."""
        return {column: self._read(value) for column, value in values.items()}

    def _read(self, value: object) -> object:
        if not isinstance(value, Lookup):
            return value
        found = self.one(value.table, value.key, value.columns, what=value.what)
        if len(value.columns) == 1 and value.sign == 1:
            return found[value.columns[0]]
        return value.sign * prod(int(found[column]) for column in value.columns)

    def one(
        self, table: str, key: Key, columns: Sequence[str], *, what: str | None = None
    ) -> dict[str, Any]:
        """`get`, for a row that must exist."""
        found = self.get(table, key, columns)
        if found is None:
            raise MissingRow(f"no {what or describe(table, key)}")
        return found


def describe(table: str, key: Key) -> str:
    return f"{table} row " + ", ".join(str(value) for value in key.values())


class SqlRows(Rows):
    """The calls as statements in a transaction (written against version 1 table names; a
    `RenamingTx` maps them to another version's)."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def get(self, table: str, key: Key, columns: Sequence[str]) -> dict[str, Any] | None:
        row = self._tx.query_one(_select(table, tuple(columns), tuple(key)), list(key.values()))
        return None if row is None else dict(zip(columns, row, strict=True))

    def insert(self, table: str, row: Values) -> None:
        self._tx.execute(_insert(table, tuple(row)), list(row.values()))

    def update(
        self,
        table: str,
        key: Key,
        *,
        set: Values | None = None,
        add: Mapping[str, Amount] | None = None,
        what: str | None = None,
    ) -> None:
        set_slots, set_params = _slots((set or {}).values())
        add_slots, add_params = _slots((add or {}).values())
        statement = _update(
            table, tuple(set or {}), set_slots, tuple(add or {}), add_slots, tuple(key)
        )
        params = [*set_params, *add_params, *key.values()]
        self._expect_one(statement, params, what or describe(table, key))

    def delete(self, table: str, key: Key, *, what: str | None = None) -> None:
        statement = _delete(table, tuple(key))
        self._expect_one(statement, list(key.values()), what or describe(table, key))

    def accumulate(self, table: str, key: Key, add: Mapping[str, Amount]) -> None:
        slots, params = _slots([*key.values(), *add.values()])
        self._tx.execute(_accumulate(table, tuple(key), tuple(add), slots), params)

    def _expect_one(self, statement: str, params: Sequence[object], what: str) -> None:
        """Checked at once, or when a pipelined transaction is flushed."""
        self._tx.expect(statement, params, 1, lambda: MissingRow(f"no {what}"))


# Statements are built from the projections' own table and column names, never from input.


def _slots(values: Iterable[object]) -> tuple[tuple[str, ...], list[object]]:
    """The SQL each value takes the place of (`?`, or a Lookup's subquery) and the parameters."""
    slots: list[str] = []
    params: list[object] = []
    for value in values:
        if isinstance(value, Lookup):
            slots.append(_lookup(value.table, value.columns, value.sign, tuple(value.key)))
            params.extend(value.key.values())
        else:
            slots.append("?")
            params.append(value)
    return tuple(slots), params


@lru_cache(maxsize=256)
def _lookup(table: str, columns: tuple[str, ...], sign: int, key: tuple[str, ...]) -> str:
    product = " * ".join(columns)
    value = product if sign == 1 else f"{sign} * {product}"
    return f"(SELECT {value} FROM {table} WHERE {_where(key)})"  # noqa: S608


def _where(key: tuple[str, ...]) -> str:
    return " AND ".join(f"{column} = ?" for column in key)


@lru_cache(maxsize=256)
def _select(table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    return f"SELECT {', '.join(columns)} FROM {table} WHERE {_where(key)}"  # noqa: S608


@lru_cache(maxsize=256)
def _insert(table: str, columns: tuple[str, ...], slots: tuple[str, ...] | None = None) -> str:
    holes = ", ".join(slots or ("?" for _ in columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({holes})"  # noqa: S608


@lru_cache(maxsize=256)
def _update(
    table: str,
    set: tuple[str, ...],
    set_slots: tuple[str, ...],
    add: tuple[str, ...],
    add_slots: tuple[str, ...],
    key: tuple[str, ...],
) -> str:
    changes = [f"{c} = {slot}" for c, slot in zip(set, set_slots, strict=True)]
    changes += [f"{c} = {c} + {slot}" for c, slot in zip(add, add_slots, strict=True)]
    return f"UPDATE {table} SET {', '.join(changes)} WHERE {_where(key)}"  # noqa: S608


@lru_cache(maxsize=256)
def _delete(table: str, key: tuple[str, ...]) -> str:
    return f"DELETE FROM {table} WHERE {_where(key)}"  # noqa: S608


@lru_cache(maxsize=256)
def _accumulate(
    table: str, key: tuple[str, ...], add: tuple[str, ...], slots: tuple[str, ...]
) -> str:
    sums = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in add)
    insert = _insert(table, (*key, *add), slots)
    return f"{insert} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sums}"
