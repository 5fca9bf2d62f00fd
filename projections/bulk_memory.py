"""A bulk rebuild's read model in memory: rows and documents folded per key, spilled to the
shadow when there are too many (projections.bulk_rebuild).

:class:`WriteBackCache` holds one value per (table, key), the most recently touched last. When
it holds more than its limit, the least recently touched half is written to the shadow (the
backing) and forgotten; a key asked for again is read back from the shadow, but only if it was
written there (the hashes of every spilled key are kept: a small set, so a key the shadow never
saw costs no round trip). Events of one aggregate sit close together in the log, so a key is
rarely asked for after it has been spilled.

Each event's changes can be undone (`begin` / `rollback`): an event the projection fails on
leaves nothing behind, as its rolled-back transaction does live.

:class:`MemoryRows` (relational models, `projections.rows`) and :class:`MemoryDocuments`
(document models, `projections.document_ops`) are the projections' two interfaces over it.
"""

from collections.abc import Hashable, Mapping, Sequence
from itertools import islice
from typing import Any, Protocol

from projections.rows import Amount, DuplicateRow, Key, MissingRow, Rows, Values, describe

Entry = tuple[str, Hashable]
"""(table, key)."""
Spilled = dict[str, list[tuple[Hashable, Any, bool]]]
"""Per table: (key, value or None for a deleted one, whether the shadow holds an older one)."""

_ABSENT = object()


class BackingFailed(Exception):
    """The shadow could not be read or written (an infrastructure failure, never parked)."""


class Backing(Protocol):
    def load(self, table: str, key: Hashable) -> Any:
        """The value the shadow holds for the key, or None."""

    def write(self, spilled: Spilled) -> None:
        """Write spilled values over the shadow's (delete those that are None)."""


class WriteBackCache:
    def __init__(self, backing: Backing, limit: int) -> None:
        self._backing = backing
        self._limit = limit
        self._values: dict[Entry, Any] = {}
        self._stored: set[Entry] = set()
        """Values read from the shadow: it holds an older version of them."""
        self._spilled: set[int] = set()
        self._undo: list[tuple[Entry, Any]] = []
        self.loads = 0
        self.spills = 0

    def get(self, table: str, key: Hashable) -> Any:
        entry = (table, key)
        value = self._values.pop(entry, _ABSENT)
        if value is _ABSENT:
            value = self._load(entry)
        self._values[entry] = value  # most recently touched last
        return value

    def put(self, table: str, key: Hashable, value: Any) -> None:
        entry = (table, key)
        self._undo.append((entry, self._values.pop(entry, _ABSENT)))
        self._values[entry] = value

    def begin(self) -> None:
        """Start an event: its changes can be rolled back until the next `begin`."""
        self._undo.clear()

    def rollback(self) -> None:
        for entry, previous in reversed(self._undo):
            if previous is _ABSENT:
                self._values.pop(entry, None)
            else:
                self._values[entry] = previous
        self._undo.clear()

    def spill_if_full(self) -> None:
        """Between events: write the least recently touched half out if over the limit."""
        if len(self._values) > self._limit:
            self._spill(len(self._values) // 2)

    def flush(self) -> None:
        """Write everything out (the end of the fold)."""
        self._spill(len(self._values))

    def _load(self, entry: Entry) -> Any:
        if hash(entry) not in self._spilled:
            return None
        self.loads += 1
        try:
            value = self._backing.load(*entry)
        except Exception as error:
            raise BackingFailed(f"reading {entry} back: {error}") from error
        if value is not None:
            self._stored.add(entry)
        return value

    def _spill(self, count: int) -> None:
        oldest = list(islice(self._values, count))
        spilled: Spilled = {}
        for entry in oldest:
            value = self._values.pop(entry)
            stored = entry in self._stored
            self._stored.discard(entry)
            if value is None and not stored:
                continue  # written and deleted in memory only
            spilled.setdefault(entry[0], []).append((entry[1], value, stored))
            self._spilled.add(hash(entry))
        self._undo.clear()
        if spilled:
            self.spills += 1
            try:
                self._backing.write(spilled)
            except Exception as error:
                raise BackingFailed(f"spilling to the shadow: {error}") from error


class MemoryRows(Rows):
    """`Rows` on the cache: one dict per row (every column), keyed as `keys` says per table."""

    def __init__(self, cache: WriteBackCache, keys: Mapping[str, tuple[str, ...]]) -> None:
        self._cache = cache
        self._keys = keys

    def _key(self, table: str, key: Key) -> tuple[object, ...]:
        columns = self._keys[table]
        if tuple(key) != columns:
            raise TypeError(f"{table} rows are keyed by {columns}, not {tuple(key)}")
        return tuple(key.values())

    def _existing(self, table: str, key: Key, what: str | None) -> dict[str, Any]:
        row: dict[str, Any] | None = self._cache.get(table, self._key(table, key))
        if row is None:
            raise MissingRow(f"no {what or describe(table, key)}")
        return row

    def get(self, table: str, key: Key, columns: Sequence[str]) -> dict[str, Any] | None:
        row = self._cache.get(table, self._key(table, key))
        return None if row is None else {column: row.get(column) for column in columns}

    def insert(self, table: str, row: Values) -> None:
        key = tuple(row[column] for column in self._keys[table])
        if self._cache.get(table, key) is not None:
            raise DuplicateRow(f"{table} row {', '.join(map(str, key))} exists")
        self._cache.put(table, key, dict(row))

    def update(
        self,
        table: str,
        key: Key,
        *,
        set: Values | None = None,
        add: Mapping[str, Amount] | None = None,
        what: str | None = None,
    ) -> None:
        set, add = self.resolved(set or {}), self.resolved(add or {})
        row = {**self._existing(table, key, what), **set}
        for column, amount in add.items():
            row[column] += amount
        self._cache.put(table, self._key(table, key), row)

    def delete(self, table: str, key: Key, *, what: str | None = None) -> None:
        self._existing(table, key, what)
        self._cache.put(table, self._key(table, key), None)

    def accumulate(self, table: str, key: Key, add: Mapping[str, Amount]) -> None:
        key, add = self.resolved(key), self.resolved(add)
        found = self._cache.get(table, self._key(table, key))
        if found is None:
            row = {**key, **add}
        else:
            row = {**found, **{column: found[column] + add[column] for column in add}}
        self._cache.put(table, self._key(table, key), row)


HASH = "hash"
SORTED_SET = "sorted_set"


class MemoryDocuments:
    """`document_ops.DocumentStore` on the cache: hashes (field → text) and sorted sets
    (member → integer score), keyed as in Redis without the model's prefix."""

    def __init__(self, cache: WriteBackCache) -> None:
        self._cache = cache

    def hash(self, key: str) -> dict[str, str]:
        return dict(self._cache.get(HASH, key) or {})

    def field(self, key: str, field: str) -> str | None:
        found: dict[str, str] = self._cache.get(HASH, key) or {}
        return found.get(field)

    def set_field(self, key: str, field: str, value: str) -> None:
        self._cache.put(HASH, key, {**(self._cache.get(HASH, key) or {}), field: value})

    def increment_field(self, key: str, field: str, amount: int) -> None:
        found: dict[str, str] = self._cache.get(HASH, key) or {}
        total = int(found.get(field, "0")) + amount
        self._cache.put(HASH, key, {**found, field: str(total)})

    def increment_score(self, key: str, member: str, amount: int) -> None:
        found: dict[str, int] = self._cache.get(SORTED_SET, key) or {}
        self._cache.put(SORTED_SET, key, {**found, member: found.get(member, 0) + amount})
