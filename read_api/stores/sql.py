"""The relational read models (`users_directory`, `orders`, `daily_sales`) and the checkpoint
table, in SQL that PostgreSQL and SQLite both run.

Queries are written with `?` placeholders; a `Database` runs them in a read-only snapshot
(`Session`), and its `Dialect` converts UUIDs, times and days to and from the column types.
Every listing is a keyset page: `ORDER BY <sort key>, id` and `(<sort key>, id) > (last page's)`.
SQL text is assembled only from the constants here; every value travels as a parameter.
"""

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from projections import models
from projections.versions import rename_sql, table_names
from read_api.catalog import Positions, Projection
from read_api.stores.base import (
    DailySales,
    DirectoryEntry,
    DirectoryQuery,
    OrderLine,
    OrderRow,
    OrdersQuery,
    SalesQuery,
)

if TYPE_CHECKING:
    from read_api.stores.versions import ActiveVersions

Row = tuple[Any, ...]


class Session(Protocol):
    """Queries inside one read-only snapshot."""

    def all(self, sql: str, params: Sequence[object] = ()) -> list[Row]: ...
    def one(self, sql: str, params: Sequence[object] = ()) -> Row | None: ...


class Dialect(Protocol):
    """How a database stores the values the read models hold."""

    def uuid_in(self, value: UUID) -> object: ...
    def uuid_out(self, value: Any) -> UUID: ...
    def time_in(self, value: datetime) -> object: ...
    def time_out(self, value: Any) -> datetime: ...
    def date_in(self, value: date) -> object: ...
    def date_out(self, value: Any) -> date: ...


class Database(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    def session(self) -> AbstractContextManager[Session]: ...
    def close(self) -> None: ...


class RenamingSession:
    """A session whose queries, written for version 1, read the tables of other versions."""

    def __init__(self, session: Session, names: dict[str, str]) -> None:
        self._session = session
        self._names = names

    def all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return self._session.all(rename_sql(sql, self._names), params)

    def one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        return self._session.one(rename_sql(sql, self._names), params)


def relational_names(versions: "ActiveVersions") -> dict[str, str]:
    """Stable table name → the active version's name, for the relational models."""
    names: dict[str, str] = {}
    for model in models.SQL_PROJECTIONS:
        names |= table_names(model.tables, versions.version(model.name))
    return names


def like_prefix(prefix: str) -> str:
    """A LIKE pattern (escape character `\\`) matching text that starts with `prefix`."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def read_positions(session: Session, projections: Iterable[Projection]) -> Positions:
    wanted = {(p.name, p.version) for p in projections}
    if not wanted:
        return {}
    names = sorted({name for name, _ in wanted})
    rows = session.all(
        "SELECT projection, version, context, position FROM rm_checkpoints"  # noqa: S608
        f" WHERE projection IN ({', '.join('?' * len(names))})",
        names,
    )
    return {
        (name, context): int(position)
        for name, version, context, position in rows
        if (name, version) in wanted
    }


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
    """`RelationalModels` over a SQL database holding the tables of docs/read-models.md."""

    def __init__(self, database: Database, versions: "ActiveVersions | None" = None) -> None:
        self._database = database
        self._d = database.dialect
        self._versions = versions

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A session reading the active version of each model (one version per request)."""
        names = {} if self._versions is None else relational_names(self._versions)
        with self._database.session() as session:
            yield RenamingSession(session, names) if names else session

    def positions(self, projections: Iterable[Projection]) -> Positions:
        if self._versions is not None:
            projections = [self._versions.resolve(p) for p in projections]
        with self._database.session() as session:
            return read_positions(session, projections)

    def ping(self) -> None:
        with self._database.session() as session:
            session.all("SELECT position FROM rm_checkpoints LIMIT 1")

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
            filters.add("(d.name_lower, d.id) > (?, ?)", name_lower, self._d.uuid_in(last_id))
        sql = (
            f"SELECT {DIRECTORY_COLUMNS} FROM users_directory d{filters.where}"  # noqa: S608
            " ORDER BY d.name_lower, d.id LIMIT ?"
        )
        with self._session() as session:
            rows = session.all(sql, [*filters.params, query.limit])
            hobbies = self._hobbies(session, [row[0] for row in rows])
        return [self._entry(row, hobbies.get(self._d.uuid_out(row[0]), [])) for row in rows]

    def _hobbies(self, session: Session, ids: list[Any]) -> dict[UUID, list[str]]:
        if not ids:
            return {}
        rows = session.all(
            "SELECT user_id, hobby FROM user_hobbies"  # noqa: S608
            f" WHERE user_id IN ({', '.join('?' * len(ids))}) ORDER BY user_id, hobby_lower",
            ids,
        )
        hobbies: dict[UUID, list[str]] = {}
        for user_id, hobby in rows:
            hobbies.setdefault(self._d.uuid_out(user_id), []).append(hobby)
        return hobbies

    def _entry(self, row: Row, hobbies: list[str]) -> DirectoryEntry:
        d = self._d
        return DirectoryEntry(
            id=d.uuid_out(row[0]),
            name=row[1],
            name_lower=row[2],
            email=row[3],
            city=row[4] or None,
            country=row[5] or None,
            active=bool(row[6]),
            version=int(row[7]),
            registered_at=d.time_out(row[8]),
            updated_at=d.time_out(row[9]),
            hobbies=hobbies,
        )

    def orders(self, query: OrdersQuery) -> list[OrderRow]:
        d = self._d
        filters = Filters()
        if query.user_id is not None:
            filters.add("o.user_id = ?", d.uuid_in(query.user_id))
        if query.status is not None:
            filters.add("o.status = ?", query.status)
        key = "o.placed_at" if query.by_placed_at else "o.created_at"
        if query.by_placed_at:
            filters.add("o.placed_at IS NOT NULL")
        if query.placed_from is not None:
            filters.add("o.placed_at >= ?", d.time_in(query.placed_from))
        if query.placed_to is not None:
            filters.add("o.placed_at < ?", d.time_in(query.placed_to))
        if query.after is not None:
            last_time, last_id = query.after
            filters.add(f"({key}, o.id) > (?, ?)", d.time_in(last_time), d.uuid_in(last_id))
        sql = (
            f"SELECT {ORDER_COLUMNS} FROM orders o{filters.where}"  # noqa: S608
            f" ORDER BY {key}, o.id LIMIT ?"
        )
        with self._session() as session:
            rows = session.all(sql, [*filters.params, query.limit])
        return [self._order(row) for row in rows]

    def order(self, order_id: UUID) -> OrderRow | None:
        key = self._d.uuid_in(order_id)
        with self._session() as session:
            row = session.one(
                f"SELECT {ORDER_COLUMNS} FROM orders o WHERE o.id = ?",  # noqa: S608
                [key],
            )
            if row is None:
                return None
            lines = session.all(
                "SELECT sku, quantity, unit_price_cents FROM order_lines"
                " WHERE order_id = ? ORDER BY sku",
                [key],
            )
        return self._order(row, [OrderLine(sku, int(q), int(p)) for sku, q, p in lines])

    def _order(self, row: Row, lines: list[OrderLine] | None = None) -> OrderRow:
        d = self._d

        def time(value: Any) -> datetime | None:
            return None if value is None else d.time_out(value)

        return OrderRow(
            id=d.uuid_out(row[0]),
            user_id=d.uuid_out(row[1]),
            currency=row[2],
            status=row[3],
            total_cents=int(row[4]),
            line_count=int(row[5]),
            created_at=d.time_out(row[6]),
            placed_at=time(row[7]),
            paid_at=time(row[8]),
            shipped_at=time(row[9]),
            cancelled_at=time(row[10]),
            cancel_reason=row[11],
            version=int(row[12]),
            lines=lines,
        )

    def daily_sales(self, query: SalesQuery) -> list[DailySales]:
        d = self._d
        filters = Filters()
        if query.currency is not None:
            filters.add("currency = ?", query.currency)
        if query.day_from is not None:
            filters.add("day >= ?", d.date_in(query.day_from))
        if query.day_to is not None:
            filters.add("day <= ?", d.date_in(query.day_to))
        if query.after is not None:
            last_day, last_currency = query.after
            filters.add("(day, currency) > (?, ?)", d.date_in(last_day), last_currency)
        sql = (
            f"SELECT {SALES_COLUMNS} FROM daily_sales{filters.where}"  # noqa: S608
            " ORDER BY day, currency LIMIT ?"
        )
        with self._session() as session:
            rows = session.all(sql, [*filters.params, query.limit])
        return [
            DailySales(d.date_out(day), currency, int(n_paid), int(paid), int(n_ref), int(ref))
            for day, currency, n_paid, paid, n_ref, ref in rows
        ]
