"""Comparing two versions of a read model in bounded memory (the rebuild's verify step).

`entries(target)` streams a model as `(path, value)` pairs in a canonical order: SQL tables
row by row in primary-key order (keyset pages), document models key by key (Redis keys sorted,
values read in pipelined batches; the generic SQL tables in key order). Values are normalised as
by :func:`normalise`. Both versions of a projection live in the same store, so the order
is the same on both sides. `compare(live, shadow)` walks both streams in step: the SHA-256 of
the shadow's stream, and the first paths where they differ (none: equal).
"""

import hashlib
import heapq
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import zip_longest
from typing import Any
from uuid import UUID

from projections.engine import Target
from projections.redis_target import RedisDocumentTarget
from projections.sql_target import SqlDocumentTarget, SqlProjectionTarget
from readmodels.formats import utc_text
from readmodels.keys import RedisLayout
from readmodels.sql import SqlDatabase, Table

PAGE = 5000
Entry = tuple[str, Any]


@dataclass
class Comparison:
    checksum: str
    differences: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences


def compare(live: Target, shadow: Target, *, limit: int = 10) -> Comparison:
    digest = hashlib.sha256()
    differences: list[str] = []
    missing = ("", None)
    for expected, actual in zip_longest(entries(live), entries(shadow), fillvalue=missing):
        if actual is not missing:
            digest.update(_line(actual))
        if expected != actual and len(differences) < limit:
            differences.append(_difference(expected, actual))
    return Comparison(digest.hexdigest(), differences)


def fingerprint(target: Target) -> str:
    """The SHA-256 of the model's stream (what `compare` reports for the shadow)."""
    digest = hashlib.sha256()
    for entry in entries(target):
        digest.update(_line(entry))
    return digest.hexdigest()


def entries(target: Target) -> Iterator[Entry]:
    current = getattr(target, "current", target)  # a version-following target
    p = current.projection
    if isinstance(current, RedisDocumentTarget):
        yield from _redis_entries(current, current.layout.prefix(p.name, p.version))
    elif isinstance(current, SqlDocumentTarget):
        yield from _sql_document_entries(current.db, p.name, p.version)
    elif isinstance(current, SqlProjectionTarget):
        for stable, table in zip(current.projection.tables, current.tables, strict=True):
            keys = [table.column_names.index(name) for name in table.primary_key]
            for row in _table_rows(current.db, table):
                key = ",".join(str(row[index]) for index in keys)
                yield f"{stable.name}[{key}]", dict(zip(table.column_names, row, strict=True))
    else:
        raise TypeError(f"cannot compare {target!r}")


def _line(entry: Entry) -> bytes:
    path, value = entry
    return (path + "\t" + json.dumps(value, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _difference(expected: Entry, actual: Entry) -> str:
    if not actual[0]:
        return f"{expected[0]}: missing from the rebuild"
    if not expected[0]:
        return f"{actual[0]}: not in live"
    if expected[0] != actual[0]:
        return f"{expected[0]}: live has it where the rebuild has {actual[0]}"
    live, rebuilt = expected[1], actual[1]
    if isinstance(live, dict) and isinstance(rebuilt, dict):
        fields = sorted(f for f in set(live) | set(rebuilt) if live.get(f) != rebuilt.get(f))
        return ", ".join(
            f"{expected[0]}.{f}: live {live.get(f)!r}, rebuilt {rebuilt.get(f)!r}"
            for f in fields[:3]
        )
    return f"{expected[0]}: live {live!r}, rebuilt {rebuilt!r}"


def _table_rows(db: SqlDatabase, table: Table) -> Iterator[list[Any]]:
    key = table.primary_key
    keys = ", ".join(key)
    columns = ", ".join(table.column_names)
    positions = [table.column_names.index(name) for name in key]
    after: list[Any] | None = None
    while True:
        where = "" if after is None else f" WHERE ({keys}) > ({', '.join('?' * len(key))})"
        with db.transaction(write=False) as tx:
            rows = tx.query(
                f"SELECT {columns} FROM {table.name}{where} ORDER BY {keys} LIMIT ?",  # noqa: S608
                [*(after or []), PAGE],
            )
        for row in rows:
            yield [
                normalise(column.type, value)
                for column, value in zip(table.columns, row, strict=True)
            ]
        if len(rows) < PAGE:
            return
        after = [rows[-1][index] for index in positions]


def _sql_document_entries(db: SqlDatabase, projection: str, version: int) -> Iterator[Entry]:
    """Key by key: hashes as {field: value}, sorted sets as [[member, score], …]."""
    hashes = _documents(db, "rm_hashes", "field, value", projection, version)
    scores = _documents(db, "rm_sorted_sets", "member, score", projection, version)
    yield from heapq.merge(hashes, scores, key=lambda entry: entry[0])


def _documents(
    db: SqlDatabase, table: str, columns: str, projection: str, version: int
) -> Iterator[tuple[str, Any]]:
    is_hash = table == "rm_hashes"
    key: str | None = None
    items: list[list[Any]] = []
    after: tuple[str, str] = ("", "")
    second = columns.split(",", maxsplit=1)[0]
    while True:
        with db.transaction(write=False) as tx:
            rows = tx.query(
                f"SELECT key, {columns} FROM {table}"  # noqa: S608 - fixed names
                f" WHERE projection = ? AND version = ? AND (key, {second}) > (?, ?)"
                f" ORDER BY key, {second} LIMIT ?",
                [projection, version, *after, PAGE],
            )
        for name, first, value in rows:
            if key is not None and name != key:
                yield key, _document(items, is_hash)
                items = []
            key = str(name)
            items.append([str(first), str(value) if is_hash else int(value)])
        if len(rows) < PAGE:
            break
        after = (str(rows[-1][0]), str(rows[-1][1]))
    if key is not None:
        yield key, _document(items, is_hash)


def _document(items: list[list[Any]], is_hash: bool) -> Any:
    return dict(sorted(items)) if is_hash else sorted(items)


def _redis_entries(target: RedisDocumentTarget, prefix: str) -> Iterator[Entry]:
    redis = target.redis
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
    names = sorted(
        name
        for name in (
            _text(raw)[len(prefix) :] for raw in redis.scan_iter(match=pattern, count=5000)
        )
        if not name.startswith(RedisLayout.BOOKKEEPING)
    )
    for start in range(0, len(names), 1000):
        chunk = names[start : start + 1000]
        pipe = redis.pipeline(transaction=False)
        for name in chunk:
            pipe.type(prefix + name)
        kinds = [_text(kind) for kind in pipe.execute()]
        pipe = redis.pipeline(transaction=False)
        for name, kind in zip(chunk, kinds, strict=True):
            if kind == "hash":
                pipe.hgetall(prefix + name)
            else:
                pipe.zrange(prefix + name, 0, -1, withscores=True)
        for name, kind, value in zip(chunk, kinds, pipe.execute(), strict=True):
            if kind == "hash":
                yield name, {_text(f): _text(v) for f, v in sorted(value.items())}
            else:
                yield name, sorted([_text(m), _score(s)] for m, s in value)


def _score(score: float) -> int | float:
    return int(score) if float(score).is_integer() else float(score)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def normalise(kind: str, value: Any) -> Any:
    """A column value as dumps hold it (UUIDs and times as text, booleans, integers)."""
    if value is None:
        return None
    return _NORMALISERS.get(kind, _same)(value)


def _same(value: Any) -> Any:
    return value


def _uuid(value: Any) -> str:
    return str(value if isinstance(value, UUID) else UUID(str(value)))


def _time(value: Any) -> str:
    return utc_text(value if isinstance(value, datetime) else datetime.fromisoformat(value))


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


_NORMALISERS: dict[str, Callable[[Any], Any]] = {
    "uuid": _uuid,
    "timestamptz": _time,
    "date": _day,
    "bool": bool,
    "int": int,
    "bigint": int,
    "serial": int,
}
