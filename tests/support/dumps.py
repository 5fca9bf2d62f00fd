"""Canonical dumps of read models, for the tests' "rebuild equals live" checks (invariant 4).

`dump_read_models(targets)` gives one JSON-ready structure per projection, keyed by projection
name (not version, so a rebuild at v<k+1> compares with live v<k>):

- document models: `{key: {field: value}}` for hashes, `{key: [[member, score], …]}` for sorted
  sets (members in order), keys without the `rm:{<proj>:v<k>}:` prefix; the same shape from
  Redis and from the SQL document tables;
- SQL models: `{table: [row, …]}`, rows as lists in column order, sorted, values normalised
  (UUIDs and times as text, booleans, integers), so PostgreSQL and SQLite dumps compare equal.

Checkpoints, stream sequences and dead letters are bookkeeping and are left out.
"""

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from redis import Redis

from projections.active import ActiveTarget
from projections.engine import Target
from projections.redis_target import RedisDocumentTarget
from projections.sql_target import SqlDocumentTarget, SqlProjectionTarget
from projections.verify import normalise
from readmodels.keys import RedisLayout
from readmodels.sql import SqlDatabase, Table

Dump = dict[str, Any]


def dump_read_models(targets: Iterable[Target]) -> Dump:
    dump: Dump = {}
    for chosen in targets:
        target = chosen.current if isinstance(chosen, ActiveTarget) else chosen
        p = target.projection
        if isinstance(target, RedisDocumentTarget):
            prefix = target.layout.prefix(p.name, p.version)
            dump[p.name] = dump_redis_documents(target.redis, prefix)
        elif isinstance(target, SqlDocumentTarget):
            dump[p.name] = dump_sql_documents(target.db, p.name, p.version)
        elif isinstance(target, SqlProjectionTarget):
            stable = target.projection.tables  # keyed by the version 1 names, as documented
            dump[p.name] = {
                name.name: dump_table(target.db, table)
                for name, table in zip(stable, target.tables, strict=True)
            }
        else:
            raise TypeError(f"cannot dump {target!r}")
    return dump


def checksum(dump: Dump) -> str:
    """SHA-256 of the dump's canonical JSON."""
    text = json.dumps(dump, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def differences(expected: Any, actual: Any, *, limit: int = 20, path: str = "") -> list[str]:
    """Where two dumps differ, one line per difference (at most `limit`), for test messages."""
    found: list[str] = []
    _diff(expected, actual, path or "$", found, limit)
    return found


def _diff(expected: Any, actual: Any, path: str, found: list[str], limit: int) -> None:
    if len(found) >= limit or expected == actual:
        return
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                found.append(f"{path}.{key}: missing")
            elif key not in expected:
                found.append(f"{path}.{key}: unexpected {actual[key]!r}")
            else:
                _diff(expected[key], actual[key], f"{path}.{key}", found, limit)
            if len(found) >= limit:
                return
        return
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            _diff(left, right, f"{path}[{index}]", found, limit)
        return
    found.append(f"{path}: expected {expected!r}, got {actual!r}")


def dump_redis_documents(redis: Redis, prefix: str) -> dict[str, Any]:
    documents: dict[str, Any] = {}
    for raw_key in redis.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
        key = _text(raw_key)
        name = key[len(prefix) :]
        if name.startswith(RedisLayout.BOOKKEEPING):
            continue
        kind = _text(redis.type(key))
        if kind == "hash":
            fields = redis.hgetall(key)
            documents[name] = {_text(f): _text(v) for f, v in sorted(fields.items())}
        elif kind == "zset":
            members: list[tuple[Any, float]] = redis.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
            documents[name] = sorted([_text(m), _score(s)] for m, s in members)
        else:
            raise TypeError(f"unexpected {kind} at {key}")
    return dict(sorted(documents.items()))


def dump_sql_documents(db: SqlDatabase, projection: str, version: int) -> dict[str, Any]:
    documents: dict[str, Any] = {}
    with db.transaction(write=False) as tx:
        hashes = tx.query(
            "SELECT key, field, value FROM rm_hashes WHERE projection = ? AND version = ?",
            [projection, version],
        )
        scores = tx.query(
            "SELECT key, member, score FROM rm_sorted_sets WHERE projection = ? AND version = ?",
            [projection, version],
        )
    for key, field, value in hashes:
        documents.setdefault(str(key), {})[str(field)] = str(value)
    for key, member, score in scores:
        documents.setdefault(str(key), []).append([str(member), int(score)])
    return {
        key: dict(sorted(value.items())) if isinstance(value, dict) else sorted(value)
        for key, value in sorted(documents.items())
    }


def dump_table(db: SqlDatabase, table: Table) -> list[list[Any]]:
    with db.transaction(write=False) as tx:
        rows = tx.query(f"SELECT {', '.join(table.column_names)} FROM {table.name}")
    normalised = [
        [normalise(column.type, value) for column, value in zip(table.columns, row, strict=True)]
        for row in rows
    ]
    return sorted(normalised, key=json.dumps)


def _score(score: float) -> int | float:
    return int(score) if float(score).is_integer() else float(score)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
