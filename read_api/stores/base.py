"""What the read stores return, and the two families of read models they serve.

Rows are plain frozen dataclasses in domain terms: UUIDs, aware UTC datetimes, integer cents.
The HTTP layer turns them into JSON (decimal strings, ISO 8601).
"""

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol
from uuid import UUID

from readmodels.catalog import ReadModel
from readmodels.checkpoints import Positions
from readmodels.sql import Tx


@dataclass(frozen=True)
class Profile:
    id: UUID
    name: str
    email: str
    hobbies: list[str]
    city: str | None
    country: str | None
    active: bool
    version: int
    registered_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Stats:
    orders: int
    spent_cents: dict[str, int]


@dataclass(frozen=True)
class Spender:
    user_id: UUID
    cents: int


@dataclass(frozen=True)
class DirectoryEntry:
    id: UUID
    name: str
    name_lower: str
    email: str
    city: str | None
    country: str | None
    active: bool
    version: int
    registered_at: datetime
    updated_at: datetime
    hobbies: list[str]


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class OrderRow:
    id: UUID
    user_id: UUID
    currency: str
    status: str
    total_cents: int
    line_count: int
    created_at: datetime
    placed_at: datetime | None
    paid_at: datetime | None
    shipped_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    version: int
    lines: list[OrderLine] | None = None
    """Filled by `RelationalModels.order`, left out of listings."""


@dataclass(frozen=True)
class DailySales:
    day: date
    currency: str
    orders_paid: int
    paid_cents: int
    orders_refunded: int
    refunded_cents: int


@dataclass(frozen=True)
class DirectoryQuery:
    country: str | None
    city: str | None
    hobby_lower: str | None
    name_prefix_lower: str | None
    after: tuple[str, UUID] | None
    """Keyset: the (name_lower, id) of the last entry of the previous page."""
    limit: int


@dataclass(frozen=True)
class OrdersQuery:
    user_id: UUID | None
    status: str | None
    placed_from: datetime | None
    placed_to: datetime | None
    after: tuple[datetime, UUID] | None
    """Keyset: (placed_at, id) when a placed_* bound is given, else (created_at, id)."""
    limit: int

    @property
    def by_placed_at(self) -> bool:
        return self.placed_from is not None or self.placed_to is not None


@dataclass(frozen=True)
class SalesQuery:
    currency: str | None
    day_from: date | None
    day_to: date | None
    after: tuple[date, str] | None
    """Keyset: the (day, currency) of the last row of the previous page."""
    limit: int


class KeyValueModels(Protocol):
    """`user_profiles`, `user_stats`, `top_spenders`: Redis, or SQLite tables of that shape."""

    def positions(self, projections: Iterable[ReadModel]) -> Positions: ...
    def profile(self, user_id: UUID) -> Profile | None: ...
    def stats(self, user_id: UUID) -> Stats | None: ...
    def top_spenders(self, currency: str, limit: int) -> list[Spender]: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


class RelationalModels(Protocol):
    """`users_directory`, `orders`, `daily_sales`: PostgreSQL, or SQLite. `reading` is a
    read-only transaction on the active versions of every relational model, for the read
    endpoints of a context's own models (statements name the tables as at version 1)."""

    def positions(self, projections: Iterable[ReadModel]) -> Positions: ...
    def reading(self) -> AbstractContextManager[Tx]: ...
    def directory(self, query: DirectoryQuery) -> list[DirectoryEntry]: ...
    def orders(self, query: OrdersQuery) -> list[OrderRow]: ...
    def order(self, order_id: UUID) -> OrderRow | None: ...
    def daily_sales(self, query: SalesQuery) -> list[DailySales]: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...
