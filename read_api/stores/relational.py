"""The relational read models (`users_directory`, `orders`, `daily_sales`, and any other a
context declares) in SQL that PostgreSQL and SQLite both run, through the read models' SQL layer
(`readmodels.sql`).

Each read runs in one read-only transaction (a snapshot in PostgreSQL); parameters are adapted
by the database's dialect and stored values turned back by `readmodels.formats`. Every listing
is a keyset page: `ORDER BY <sort key>, id` and `(<sort key>, id) > (last page's)`. SQL text is
assembled only from the constants here; every value travels as a parameter.
"""

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from read_api.stores.base import (
    DailySales,
    DirectoryEntry,
    DirectoryQuery,
    OrderLine,
    OrderRow,
    OrdersQuery,
    SalesQuery,
)
from read_api.stores.missing_tables import checkpoint_positions
from read_api.stores.version_cache import ActiveVersions
from readmodels.catalog import ReadModel
from readmodels.checkpoints import Positions, probe_checkpoints
from readmodels.formats import stored_date, stored_time, stored_uuid
from readmodels.sql import Row, SqlDatabase, Tx
from readmodels.versions import RenamingTx


def relational_names(versions: ActiveVersions, models: Iterable[ReadModel]) -> dict[str, str]:
    """Stable table name → the active version's name, for the relational `models`."""
    names: dict[str, str] = {}
    for model in models:
        names |= versions.resolve(model).table_renames
    return names


def like_prefix(prefix: str) -> str:
    """A LIKE pattern (escape character `\\`) matching text that starts with `prefix`."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class Filters:
    """WHERE conditions and their parameters, in order."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.params: list[object] = []

    def add(self, condition: str, *params: object) -> None:
        self.conditions.append(condition)
        self.params.extend(params)

    @property
    def where(self) -> str:
        return f" WHERE {' AND '.join(self.conditions)}" if self.conditions else ""


DIRECTORY_COLUMNS = (
    "d.id, d.name, d.name_lower, d.email, d.city, d.country, d.active, d.version,"
    " d.registered_at, d.updated_at"
)
ORDER_COLUMNS = (
    "o.id, o.user_id, o.currency, o.status, o.total_cents, o.line_count, o.created_at,"
    " o.placed_at, o.paid_at, o.shipped_at, o.cancelled_at, o.cancel_reason, o.version"
)
SALES_COLUMNS = "day, currency, orders_paid, paid_cents, orders_refunded, refunded_cents"


class RelationalTables:
    """`RelationalModels` over a SQL database holding the tables of `models` (those of
    docs/read-models.md, and those of any other context's relational models)."""

    def __init__(
        self,
        database: SqlDatabase,
        models: Sequence[ReadModel],
        versions: ActiveVersions | None = None,
    ) -> None:
        self._database = database
        self._models = tuple(models)
        self._versions = versions

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        """A read-only transaction reading the active version of each model (one version per
        request): statements name the tables as at version 1."""
        names = {} if self._versions is None else relational_names(self._versions, self._models)
        with self._database.transaction(write=False) as tx:
            yield RenamingTx(tx, names) if names else tx

    def positions(self, models: Iterable[ReadModel]) -> Positions:
        if self._versions is not None:
            models = [self._versions.resolve(model) for model in models]
        return checkpoint_positions(self._database, models)

    def ping(self) -> None:
        with self._database.transaction(write=False) as tx:
            probe_checkpoints(tx)

    def close(self) -> None:
        self._database.close()

    def directory(self, query: DirectoryQuery) -> list[DirectoryEntry]:
        filters = Filters()
        if query.country is not None:
            filters.add("d.country = ?", query.country)
        if query.city is not None:
            filters.add("d.city = ?", query.city)
        if query.name_prefix_lower:
            filters.add("d.name_lower LIKE ? ESCAPE '\\'", like_prefix(query.name_prefix_lower))
        if query.hobby_lower is not None:
            filters.add(
                "EXISTS (SELECT 1 FROM user_hobbies h"
                " WHERE h.user_id = d.id AND h.hobby_lower = ?)",
                query.hobby_lower,
            )
        if query.after is not None:
            name_lower, last_id = query.after
            filters.add("(d.name_lower, d.id) > (?, ?)", name_lower, last_id)
        sql = (
            f"SELECT {DIRECTORY_COLUMNS} FROM users_directory d{filters.where}"  # noqa: S608
            " ORDER BY d.name_lower, d.id LIMIT ?"
        )
        with self.reading() as tx:
            rows = tx.query(sql, [*filters.params, query.limit])
            hobbies = self._hobbies(tx, [row[0] for row in rows])
        return [self._entry(row, hobbies.get(stored_uuid(row[0]), [])) for row in rows]

    def _hobbies(self, tx: Tx, ids: list[Any]) -> dict[UUID, list[str]]:
        if not ids:
            return {}
        rows = tx.query(
            "SELECT user_id, hobby FROM user_hobbies"  # noqa: S608
            f" WHERE user_id IN ({', '.join('?' * len(ids))}) ORDER BY user_id, hobby_lower",
            ids,
        )
        hobbies: dict[UUID, list[str]] = {}
        for user_id, hobby in rows:
            hobbies.setdefault(stored_uuid(user_id), []).append(hobby)
        return hobbies

    def _entry(self, row: Row, hobbies: list[str]) -> DirectoryEntry:
        return DirectoryEntry(
            id=stored_uuid(row[0]),
            name=row[1],
            name_lower=row[2],
            email=row[3],
            city=row[4] or None,
            country=row[5] or None,
            active=bool(row[6]),
            version=int(row[7]),
            registered_at=stored_time(row[8]),
            updated_at=stored_time(row[9]),
            hobbies=hobbies,
        )

    def orders(self, query: OrdersQuery) -> list[OrderRow]:
        filters = Filters()
        if query.user_id is not None:
            filters.add("o.user_id = ?", query.user_id)
        if query.status is not None:
            filters.add("o.status = ?", query.status)
        key = "o.placed_at" if query.by_placed_at else "o.created_at"
        if query.by_placed_at:
            filters.add("o.placed_at IS NOT NULL")
        if query.placed_from is not None:
            filters.add("o.placed_at >= ?", query.placed_from)
        if query.placed_to is not None:
            filters.add("o.placed_at < ?", query.placed_to)
        if query.after is not None:
            last_time, last_id = query.after
            filters.add(f"({key}, o.id) > (?, ?)", last_time, last_id)
        sql = (
            f"SELECT {ORDER_COLUMNS} FROM orders o{filters.where}"  # noqa: S608
            f" ORDER BY {key}, o.id LIMIT ?"
        )
        with self.reading() as tx:
            rows = tx.query(sql, [*filters.params, query.limit])
        return [self._order(row) for row in rows]

    def order(self, order_id: UUID) -> OrderRow | None:
        key = order_id
        with self.reading() as tx:
            row = tx.query_one(
                f"SELECT {ORDER_COLUMNS} FROM orders o WHERE o.id = ?",  # noqa: S608
                [key],
            )
            if row is None:
                return None
            lines = tx.query(
                "SELECT sku, quantity, unit_price_cents FROM order_lines"
                " WHERE order_id = ? ORDER BY sku",
                [key],
            )
        return self._order(row, [OrderLine(sku, int(q), int(p)) for sku, q, p in lines])

    def _order(self, row: Row, lines: list[OrderLine] | None = None) -> OrderRow:

        def time(value: Any) -> datetime | None:
            return None if value is None else stored_time(value)

        return OrderRow(
            id=stored_uuid(row[0]),
            user_id=stored_uuid(row[1]),
            currency=row[2],
            status=row[3],
            total_cents=int(row[4]),
            line_count=int(row[5]),
            created_at=stored_time(row[6]),
            placed_at=time(row[7]),
            paid_at=time(row[8]),
            shipped_at=time(row[9]),
            cancelled_at=time(row[10]),
            cancel_reason=row[11],
            version=int(row[12]),
            lines=lines,
        )

    def daily_sales(self, query: SalesQuery) -> list[DailySales]:
        filters = Filters()
        if query.currency is not None:
            filters.add("currency = ?", query.currency)
        if query.day_from is not None:
            filters.add("day >= ?", query.day_from)
        if query.day_to is not None:
            filters.add("day <= ?", query.day_to)
        if query.after is not None:
            last_day, last_currency = query.after
            filters.add("(day, currency) > (?, ?)", last_day, last_currency)
        sql = (
            f"SELECT {SALES_COLUMNS} FROM daily_sales{filters.where}"  # noqa: S608
            " ORDER BY day, currency LIMIT ?"
        )
        with self.reading() as tx:
            rows = tx.query(sql, [*filters.params, query.limit])
        return [
            DailySales(stored_date(day), currency, int(n_paid), int(paid), int(n_ref), int(ref))
            for day, currency, n_paid, paid, n_ref, ref in rows
        ]
