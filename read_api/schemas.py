"""Response bodies. Money is a decimal string with its currency's ISO 4217 minor units ("12.30",
"1500" yen), from the integer cents the read models hold (`readmodels.formats.money_text`); times
are ISO 8601 in UTC."""

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field

from read_api.fulfilment_schemas import FulfilmentProgress
from runtime.http.money import Money

NextCursor = Annotated[
    str | None, Field(description="Pass as `cursor` for the next page; null on the last page.")
]


class Profile(BaseModel):
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


class Stats(BaseModel):
    user_id: UUID
    orders: int = Field(description="Orders the user created.")
    spent: dict[str, Money] = Field(
        description="Paid per currency, net of cancellations after payment."
    )


class Spender(BaseModel):
    rank: int
    user_id: UUID
    spent: Money


class Leaderboard(BaseModel):
    currency: str
    items: list[Spender]


class DirectoryEntry(BaseModel):
    id: UUID
    name: str
    email: str
    city: str | None
    country: str | None
    hobbies: list[str]
    active: bool
    version: int
    registered_at: datetime
    updated_at: datetime


class DirectoryPage(BaseModel):
    items: list[DirectoryEntry]
    next_cursor: NextCursor


class OrderSummary(BaseModel):
    id: UUID
    user_id: UUID
    currency: str
    status: str
    total: Money
    line_count: int
    created_at: datetime
    placed_at: datetime | None
    paid_at: datetime | None
    shipped_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    version: int


class OrderLine(BaseModel):
    sku: str
    quantity: int
    unit_price: Money
    subtotal: Money


class Order(OrderSummary):
    lines: list[OrderLine]
    fulfilment: FulfilmentProgress | None = Field(
        default=None, description="Its fulfilment's status and steps; null before one starts."
    )


class OrdersPage(BaseModel):
    items: list[OrderSummary]
    next_cursor: NextCursor


class DailySales(BaseModel):
    day: date
    currency: str
    orders_paid: int
    paid: Money
    orders_refunded: int
    refunded: Money
    net: Money = Field(
        description="paid - refunded, with their decimals (negative on a day that refunded more"
        " than it was paid)."
    )


class SalesPage(BaseModel):
    items: list[DailySales]
    next_cursor: NextCursor
