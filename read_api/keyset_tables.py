"""Keyset pages and single rows of a context's own relational read model, read with
`stores.relational.reading()` (the `payments`, `shipments` and `fulfilments` models): rows by a
time column then an id column, filtered by equality on columns."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from fastapi import Request

from domain.errors import InvalidValue
from read_api.paging import cut, key_time, key_uuid, scope
from read_api.reading import Reader
from read_api.resources import read_side
from read_api.stores import ReadStores
from read_api.stores.relational import Filters
from readmodels.formats import stored_time, stored_uuid
from readmodels.sql import Row

T = TypeVar("T")


@dataclass(frozen=True)
class KeysetTable:
    """A table as listed: its columns (in the order rows come back), the time column and the id
    column that order it."""

    name: str
    columns: tuple[str, ...]
    time_column: str
    id_column: str = "id"

    @property
    def selected(self) -> str:
        return ", ".join(self.columns)

    def sort_key(self, row: Row) -> list[str | int]:
        time = stored_time(row[self.columns.index(self.time_column)])
        return [time.isoformat(), str(stored_uuid(row[self.columns.index(self.id_column)]))]

    def rows(self, stores: ReadStores, filters: Filters, limit: int) -> list[Row]:
        order = f"{self.time_column}, {self.id_column}"
        sql = (
            f"SELECT {self.selected} FROM {self.name}{filters.where}"  # noqa: S608
            f" ORDER BY {order} LIMIT ?"
        )
        with stores.relational.reading() as tx:
            return tx.query(sql, [*filters.params, limit])

    def one(self, stores: ReadStores, column: str, value: object) -> Row | None:
        sql = f"SELECT {self.selected} FROM {self.name} WHERE {column} = ?"  # noqa: S608
        with stores.relational.reading() as tx:
            return tx.query_one(sql, [value])


async def keyset_page(
    request: Request,
    reader: Reader,
    table: KeysetTable,
    filters: Mapping[str, object | None],
    page: tuple[str | None, int],
    shown: Callable[[Row], T],
) -> tuple[list[T], str | None]:
    """One page (`page`: the cursor and the limit) of `table`'s rows whose columns equal the
    filters given (None: not filtered), and the cursor of the next page."""
    cursor, limit = page
    bound_to = scope(table.name, filters)
    conditions = Filters()
    for column, value in filters.items():
        if value is not None:
            conditions.add(f"{column} = ?", value)
    if cursor is not None:
        last_time, last_id = read_side(request).cursors.decode(bound_to, cursor, 2)
        conditions.add(
            f"({table.time_column}, {table.id_column}) > (?, ?)",
            key_time(last_time),
            key_uuid(last_id),
        )
    rows = await reader.read(lambda stores: table.rows(stores, conditions, limit + 1))
    items, next_cursor = cut(rows, limit, table.sort_key, reader.side.cursors, bound_to)
    return [shown(row) for row in items], next_cursor


E = TypeVar("E", bound=StrEnum)


def one_of(kind: type[E]) -> Callable[[str], E]:
    """A parser of a parameter that names one of `kind`'s values, exactly (for
    `params.strictly`); the parameter's schema is the enum's."""

    def parse(text: str) -> E:
        try:
            return kind(text)
        except ValueError:
            raise InvalidValue(f"must be one of {', '.join(kind)}") from None

    return parse
