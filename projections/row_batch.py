"""A batch of events' `Rows` calls folded per table and key, so that each table is written once
per batch (projections.row_batch_sql) instead of once per call.

The batch's events are first run against :class:`RecordingRows`, which only notes the calls.
The rows those calls must read (updated, deleted or looked up, unless the batch inserted them
first) are then read in one query per table, and the calls replayed in order on
:class:`RowFold`, with the semantics the statements have: a `Lookup` of a missing row reads as
NULL (None), NULL plus anything is NULL, an update or delete of a missing row is MissingRow.
What is left is, per table, the rows to delete, insert and update, and the counters to add to
rows never read (`accumulate` needs no read: an upsert adds).

Whatever goes wrong here (a MissingRow, an insert of a key that exists, the projection raising)
is :class:`BatchFailed`, never a verdict on one event: the caller runs the batch again statement
by statement, which finds the failing event exactly as before (so a constraint only PostgreSQL
checks, an earlier event's failure, the error's text all stay what they were). A projection that
reads rows (`get`), or a row the fold cannot know without reading it, is :class:`NotFoldable`:
that batch runs statement by statement, with nothing written yet.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from math import prod
from typing import Any, Literal

from projections.rows import Amount, Key, Lookup, MissingRow, Rows, Values, describe

Entry = tuple[str, tuple[object, ...]]
"""(table, key values in key column order)."""
Row = dict[str, Any]
Method = Literal["insert", "update", "delete", "accumulate"]


class NotFoldable(Exception):
    """The batch needs a row read while it runs, or changes a row's key: run it statement by
    statement."""


class BatchFailed(Exception):
    """An event of the batch failed: run it statement by statement to find which, and how."""


@dataclass(frozen=True, slots=True)
class Call:
    method: Method
    table: str
    key: Key
    """The row itself for an insert."""
    set: Values | None = None
    add: Mapping[str, Amount] | None = None
    what: str | None = None


class RecordingRows(Rows):
    """Notes the calls, runs nothing."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def get(self, table: str, key: Key, columns: Sequence[str]) -> dict[str, Any] | None:
        raise NotFoldable(f"reads {table}")

    def insert(self, table: str, row: Values) -> None:
        self.calls.append(Call("insert", table, row))

    def update(
        self,
        table: str,
        key: Key,
        *,
        set: Values | None = None,
        add: Mapping[str, Amount] | None = None,
        what: str | None = None,
    ) -> None:
        self.calls.append(Call("update", table, key, set, add, what))

    def delete(self, table: str, key: Key, *, what: str | None = None) -> None:
        self.calls.append(Call("delete", table, key, what=what))

    def accumulate(self, table: str, key: Key, add: Mapping[str, Amount]) -> None:
        self.calls.append(Call("accumulate", table, key, add=add))


@dataclass
class Changes:
    """One table's writes for the batch (rows are complete: every column)."""

    deletes: list[tuple[object, ...]] = field(default_factory=list)
    inserts: list[Row] = field(default_factory=list)
    updates: list[Row] = field(default_factory=list)
    adds: dict[tuple[str, ...], list[Row]] = field(default_factory=dict)
    """Upserts adding to counters, grouped by the columns added to (key columns first)."""


class RowFold:
    def __init__(
        self, keys: Mapping[str, tuple[str, ...]], columns: Mapping[str, tuple[str, ...]]
    ) -> None:
        self._keys = keys
        self._columns = columns
        self._original: dict[Entry, Row | None] = {}
        """Each row as the database held it before the batch (None: there was none)."""
        self._current: dict[Entry, Row | None] = {}
        self._adds: dict[Entry, Row] = {}
        """Rows only accumulated into and never read: key columns and the amounts to add."""

    def entry(self, table: str, key: Key) -> Entry:
        """NotFoldable for a row named otherwise than by its table's key (the statements
        take it; the fold does not)."""
        columns = self._keys.get(table)
        if columns is None or tuple(key) != columns:
            raise NotFoldable(f"{table} rows named by {tuple(key)}")
        return table, tuple(key.values())

    def reads(self, calls: Iterable[Call]) -> dict[str, list[tuple[object, ...]]]:
        """Per table, the keys of the rows the calls read before the batch writes them."""
        inserted: set[Entry] = set()
        needed: dict[Entry, None] = {}
        for call in calls:
            if call.method == "insert":
                inserted.add(self._row_entry(call.table, call.key))
                continue
            for lookup in _lookups(call):
                entry = self.entry(lookup.table, lookup.key)
                if entry not in inserted:
                    needed[entry] = None
            if call.method != "accumulate":
                entry = self.entry(call.table, call.key)
                if entry not in inserted:
                    needed[entry] = None
        per_table: dict[str, list[tuple[object, ...]]] = {}
        for table, key in needed:
            per_table.setdefault(table, []).append(key)
        return per_table

    def loaded(self, table: str, keys: Iterable[tuple[object, ...]], rows: Iterable[Row]) -> None:
        """What the database holds of `keys` (`rows`: those it has, each complete)."""
        for key in keys:
            self._original[(table, key)] = self._current[(table, key)] = None
        key_columns = self._keys[table]
        for row in rows:
            entry = (table, tuple(row[column] for column in key_columns))
            self._original[entry] = row
            self._current[entry] = dict(row)

    def replay(self, calls: Iterable[Call]) -> None:
        for call in calls:
            try:
                self._run(call)
            except NotFoldable:
                raise
            except Exception as error:
                raise BatchFailed(f"{call.method} {call.table}: {error!r}") from error

    def changes(self) -> dict[str, Changes]:
        per_table: dict[str, Changes] = {}
        for (table, key), row in self._current.items():
            before = self._original[(table, key)]
            if row is before or row == before:
                continue
            changes = per_table.setdefault(table, Changes())
            if row is None:
                changes.deletes.append(key)
            elif before is None:
                changes.inserts.append(row)
            else:
                changes.updates.append(row)
        for (table, _), row in self._adds.items():
            changes = per_table.setdefault(table, Changes())
            changes.adds.setdefault(tuple(row), []).append(row)
        return per_table

    def _run(self, call: Call) -> None:
        if call.method == "insert":
            self._insert(call.table, call.key)
        elif call.method == "update":
            self._update(call)
        elif call.method == "delete":
            entry = self.entry(call.table, call.key)
            self._existing(entry, call.key, call.what)
            self._current[entry] = None
        else:
            self._accumulate(call.table, call.key, call.add or {})

    def _row_entry(self, table: str, row: Values) -> Entry:
        columns = self._keys.get(table)
        if columns is None:
            raise NotFoldable(f"{table} is not the projection's")
        return table, tuple([row[column] for column in columns])

    def _known(self, entry: Entry) -> Row | None:
        if entry not in self._current or entry in self._adds:
            raise NotFoldable(f"{entry[0]} row {entry[1]} was not read")
        return self._current[entry]

    def _existing(self, entry: Entry, key: Key, what: str | None) -> Row:
        row = self._known(entry)
        if row is None:
            raise MissingRow(f"no {what or describe(entry[0], key)}")
        return row

    def _insert(self, table: str, values: Values) -> None:
        entry = self._row_entry(table, values)
        if entry in self._adds:
            raise NotFoldable(f"{table} row {entry[1]} was not read")
        if entry not in self._current:
            self._original[entry] = self._current[entry] = None  # the insert would say otherwise
        if self._current[entry] is not None:
            raise BatchFailed(f"{table} row {entry[1]} exists")
        self._current[entry] = self._complete(table, values)

    def _update(self, call: Call) -> None:
        entry = self.entry(call.table, call.key)
        row = dict(self._existing(entry, call.key, call.what))
        for column, value in self._resolved(call.set or {}).items():
            self._column(call.table, column)
            if column in self._keys[call.table]:
                raise NotFoldable(f"changes the key of a {call.table} row")
            row[column] = value
        for column, amount in self._resolved(call.add or {}).items():
            row[column] = _plus(row[column], amount)
        self._current[entry] = row

    def _accumulate(self, table: str, key: Key, add: Mapping[str, Amount]) -> None:
        resolved_key, amounts = self._resolved(key), self._resolved(add)
        entry = self.entry(table, resolved_key)
        pending = self._adds.get(entry)
        if pending is not None:
            self._adds[entry] = {**pending, **{c: _plus(pending[c], a) for c, a in amounts.items()}}
        elif entry not in self._current:
            self._adds[entry] = {**resolved_key, **amounts}
        else:
            row = self._current[entry]
            if row is None:
                self._current[entry] = self._complete(table, {**resolved_key, **amounts})
            else:
                self._current[entry] = {
                    **row,
                    **{c: _plus(row[c], a) for c, a in amounts.items()},
                }

    def _complete(self, table: str, values: Values) -> Row:
        columns = self._columns[table]
        unknown = set(values) - set(columns)
        if unknown:
            raise BatchFailed(f"{table} has no column {', '.join(sorted(unknown))}")
        return {column: values.get(column) for column in columns}

    def _column(self, table: str, column: str) -> None:
        if column not in self._columns[table]:
            raise BatchFailed(f"{table} has no column {column}")

    def _resolved(self, values: Mapping[str, object]) -> dict[str, Any]:
        return {column: self._read(value) for column, value in values.items()}

    def _read(self, value: object) -> object:
        """A Lookup as its subquery reads it: NULL (None) when the row is missing."""
        if not isinstance(value, Lookup):
            return value
        row = self._known(self.entry(value.table, value.key))
        if row is None:
            return None
        found = [row[column] for column in value.columns]
        if len(found) == 1 and value.sign == 1:
            return found[0]
        if any(part is None for part in found):
            return None
        return value.sign * prod(found)


def _plus(value: Any, amount: Any) -> Any:
    return None if value is None or amount is None else value + amount


def _lookups(call: Call) -> list[Lookup]:
    found = [value for value in call.key.values() if isinstance(value, Lookup)]
    for values in (call.set, call.add):
        if values:
            found += [value for value in values.values() if isinstance(value, Lookup)]
    return found
