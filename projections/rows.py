"""What a relational projection does to its rows, whatever holds them.

A `SqlProjection` states each event's effect as calls on :class:`Rows`: insert a row, update or
delete the one row a key names, add to counters (creating the row if needed), read a row. The
live projector runs them as SQL statements in the batch's transaction (:class:`SqlRows`); a bulk
rebuild runs the very same calls on rows held in memory (`projections.bulk_memory`) and writes
the folded rows with `COPY`. So each projection's logic is written once, for both paths.

Keys are mappings of column to value; a table is keyed by its primary key unless its projection
names another unique key it looks rows up by (`SqlProjection.row_keys`).
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from readmodels.sql import Tx

Key = Mapping[str, object]
Values = Mapping[str, object]


class MissingRow(LookupError):
    """An event refers to a row its projection never wrote."""


class DuplicateRow(LookupError):
    """An event inserts a row whose key its projection wrote before."""


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
        add: Mapping[str, int] | None = None,
        what: str | None = None,
    ) -> None:
        """Set columns to values and add to others in the row `key` names (MissingRow if none)."""

    @abstractmethod
    def delete(self, table: str, key: Key, *, what: str | None = None) -> None:
        """Delete the row `key` names (MissingRow if none)."""

    @abstractmethod
    def accumulate(self, table: str, key: Key, add: Mapping[str, int]) -> None:
        """Add to the counters of the row `key` names, inserting it with `add` if there is none
        (`add` names every other column)."""

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
        add: Mapping[str, int] | None = None,
        what: str | None = None,
    ) -> None:
        set, add = set or {}, add or {}
        statement = _update(table, tuple(set), tuple(add), tuple(key))
        params = [*set.values(), *add.values(), *key.values()]
        if self._tx.execute(statement, params) != 1:
            raise MissingRow(f"no {what or describe(table, key)}")

    def delete(self, table: str, key: Key, *, what: str | None = None) -> None:
        if self._tx.execute(_delete(table, tuple(key)), list(key.values())) != 1:
            raise MissingRow(f"no {what or describe(table, key)}")

    def accumulate(self, table: str, key: Key, add: Mapping[str, int]) -> None:
        statement = _accumulate(table, tuple(key), tuple(add))
        self._tx.execute(statement, [*key.values(), *add.values()])


# Statements are built from the projections' own table and column names, never from input.


def _where(key: tuple[str, ...]) -> str:
    return " AND ".join(f"{column} = ?" for column in key)


@lru_cache(maxsize=256)
def _select(table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    return f"SELECT {', '.join(columns)} FROM {table} WHERE {_where(key)}"  # noqa: S608


@lru_cache(maxsize=256)
def _insert(table: str, columns: tuple[str, ...]) -> str:
    holes = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({holes})"  # noqa: S608


@lru_cache(maxsize=256)
def _update(table: str, set: tuple[str, ...], add: tuple[str, ...], key: tuple[str, ...]) -> str:
    changes = [f"{column} = ?" for column in set] + [f"{c} = {c} + ?" for c in add]
    return f"UPDATE {table} SET {', '.join(changes)} WHERE {_where(key)}"  # noqa: S608


@lru_cache(maxsize=256)
def _delete(table: str, key: tuple[str, ...]) -> str:
    return f"DELETE FROM {table} WHERE {_where(key)}"  # noqa: S608


@lru_cache(maxsize=256)
def _accumulate(table: str, key: tuple[str, ...], add: tuple[str, ...]) -> str:
    columns = (*key, *add)
    sums = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in add)
    return f"{_insert(table, columns)} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sums}"
