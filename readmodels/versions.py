"""Versions of a read model side by side, and which one is active.

- **Names.** Version 1 uses the names of docs/read-models.md. A SQL projection's tables of
  version k > 1 carry the suffix `_v<k>` (`orders_v2`, `order_lines_v2`; indexes likewise), in
  PostgreSQL and SQLite alike; its statements, written against the stable names, are rewritten
  word by word (:func:`rename_sql`). Document models already carry the version in their Redis
  prefix `rm:{<proj>:v<k>}:` or in the `version` column of the generic tables.
- **The pointer.** `rm_active(projection, version)` in the SQL read database names the active
  version of every projection (Redis-backed ones included); no row means version 1. Readers
  resolve it per request (cached briefly); projectors lock the row `FOR SHARE` around every
  batch, so a swap that locks it `FOR UPDATE` freezes the live model at one position.
- **The registry.** `rm_versions(projection, version, kind, status, as_of, created_at)` lists
  rebuilds (`kind` 'rebuild': status 'building', 'active' or 'previous') and audits (`kind`
  'audit': a model as of a time, never active).
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Literal

from readmodels.formats import stored_time
from readmodels.sql import Column, Index, Row, Table, Tx

ACTIVE = Table(
    "rm_active",
    (
        Column("projection", "text", nullable=False),
        Column("version", "int", nullable=False),
        Column("swapped_at", "timestamptz"),
    ),
    primary_key=("projection",),
)

VERSIONS = Table(
    "rm_versions",
    (
        Column("projection", "text", nullable=False),
        Column("version", "int", nullable=False),
        Column("kind", "text", nullable=False),
        Column("status", "text", nullable=False),
        Column("as_of", "timestamptz"),
        Column("created_at", "timestamptz", nullable=False),
    ),
    primary_key=("projection", "version"),
)

VERSION_TABLES = (ACTIVE, VERSIONS)

Lock = Literal["share", "update"] | None
Kind = Literal["rebuild", "audit"]


def table_name(name: str, version: int) -> str:
    return name if version == 1 else f"{name}_v{version}"


def versioned_table(table: Table, version: int) -> Table:
    if version == 1:
        return table
    return replace(
        table,
        name=table_name(table.name, version),
        indexes=tuple(
            Index(table_name(i.name, version), i.columns, i.where, i.prefix_search)
            for i in table.indexes
        ),
    )


def table_names(tables: Sequence[Table], version: int) -> dict[str, str]:
    """Stable name → the name of version `version` (empty for version 1)."""
    if version == 1:
        return {}
    return {table.name: table_name(table.name, version) for table in tables}


@cache
def _pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(re.escape(name) for name in names) + r")\b")


def rename_sql(statement: str, names: dict[str, str]) -> str:
    """`statement` with every whole-word table name of `names` replaced (columns never share a
    table's name in these models: `orders_paid` or `daily_sales_orders` stay as they are)."""
    if not names:
        return statement
    return _pattern(tuple(sorted(names))).sub(lambda m: names[m.group(1)], statement)


class RenamingTx(Tx):
    """A transaction that runs statements written for version 1 against other table names."""

    def __init__(self, tx: Tx, names: dict[str, str]) -> None:
        super().__init__(tx.dialect, tx._cursor)
        self._tx = tx
        self._names = names
        self.pipelined = tx.pipelined

    def execute(self, statement: str, params: Sequence[object] = ()) -> int:
        return self._tx.execute(rename_sql(statement, self._names), params)

    def expect(
        self,
        statement: str,
        params: Sequence[object],
        rows: int,
        failure: Callable[[], Exception],
    ) -> None:
        self._tx.expect(rename_sql(statement, self._names), params, rows, failure)

    def flush(self) -> None:
        self._tx.flush()

    def _run(self, statement: str, params: Sequence[object]) -> None:
        super()._run(rename_sql(statement, self._names), params)


# -- the pointer and the registry ------------------------------------------------------------


def ensure_pointer(tx: Tx, projection: str) -> None:
    """Make sure the projection's pointer row exists (version 1 unless set), so it can be locked."""
    tx.execute(
        "INSERT INTO rm_active (projection, version, swapped_at) VALUES (?, 1, NULL)"
        " ON CONFLICT (projection) DO NOTHING",
        [projection],
    )


def active_version(tx: Tx, projection: str, *, lock: Lock = None, nowait: bool = False) -> int:
    """The active version; with `lock`, the pointer row stays locked until the transaction
    ends (`nowait`: a row another transaction holds raises instead of waiting)."""
    suffix = ""
    if lock is not None and tx.dialect.for_update:
        suffix = " FOR SHARE" if lock == "share" else " FOR UPDATE"
        suffix += " NOWAIT" if nowait else ""
    row = tx.query_one(
        f"SELECT version FROM rm_active WHERE projection = ?{suffix}",  # noqa: S608
        [projection],
    )
    return 1 if row is None else int(row[0])


def set_active(tx: Tx, projection: str, version: int) -> None:
    tx.execute(
        "UPDATE rm_active SET version = ?, swapped_at = ? WHERE projection = ?",
        [version, datetime.now(UTC), projection],
    )


def active_versions(tx: Tx) -> dict[str, tuple[int, datetime | None]]:
    rows = tx.query("SELECT projection, version, swapped_at FROM rm_active")
    return {str(name): (int(version), _time(at)) for name, version, at in rows}


@dataclass(frozen=True)
class VersionRecord:
    projection: str
    version: int
    kind: Kind
    status: str
    as_of: datetime | None
    created_at: datetime

    @property
    def label(self) -> str:
        if self.kind == "audit" and self.as_of is not None:
            return f"at_{self.as_of.strftime('%Y%m%dT%H%M%S')}"
        return f"v{self.version}"


def records(tx: Tx, projection: str | None = None) -> list[VersionRecord]:
    where, params = ("", []) if projection is None else (" WHERE projection = ?", [projection])
    rows = tx.query(
        "SELECT projection, version, kind, status, as_of, created_at FROM rm_versions"  # noqa: S608
        f"{where} ORDER BY projection, version",
        params,
    )
    return [_record(row) for row in rows]


def next_version(tx: Tx, projection: str) -> int:
    row = tx.query_one("SELECT MAX(version) FROM rm_versions WHERE projection = ?", [projection])
    highest = 0 if row is None or row[0] is None else int(row[0])
    return max(highest, active_version(tx, projection)) + 1


def register(
    tx: Tx, projection: str, version: int, kind: Kind, as_of: datetime | None = None
) -> None:
    tx.execute(
        "INSERT INTO rm_versions (projection, version, kind, status, as_of, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (projection, version) DO NOTHING",
        [projection, version, kind, "building", as_of, datetime.now(UTC)],
    )


def set_status(tx: Tx, projection: str, version: int, status: str) -> None:
    tx.execute(
        "UPDATE rm_versions SET status = ? WHERE projection = ? AND version = ?",
        [status, projection, version],
    )


def forget(tx: Tx, projection: str, version: int) -> None:
    tx.execute(
        "DELETE FROM rm_versions WHERE projection = ? AND version = ?", [projection, version]
    )
    for checkpoints in ("rm_checkpoints", "rm_partition_checkpoints"):
        tx.execute(
            f"DELETE FROM {checkpoints} WHERE projection = ? AND version = ?",  # noqa: S608
            [projection, version],
        )


def _record(row: Row) -> VersionRecord:
    projection, version, kind, status, as_of, created_at = row
    created = _time(created_at)
    assert created is not None
    return VersionRecord(str(projection), int(version), kind, str(status), _time(as_of), created)


def _time(value: object) -> datetime | None:
    return None if value is None else stored_time(value)
