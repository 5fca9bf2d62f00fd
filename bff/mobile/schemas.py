"""The mobile BFF's answers: few fields, short names kept from the read API, small pages. Each
section may be `Unavailable` instead."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from bff.sections import Unavailable
from runtime.http.money import Money


class Me(BaseModel):
    id: UUID
    name: str


class Totals(BaseModel):
    orders: int
    spent: dict[str, Money]


class MeAnswer(BaseModel):
    profile: Me | Unavailable
    totals: Totals | Unavailable


class OrderItem(BaseModel):
    id: UUID
    status: str
    currency: str
    total: Money
    placed_at: datetime | None


class OrdersPage(BaseModel):
    items: list[OrderItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class OrdersAnswer(BaseModel):
    orders: OrdersPage | Unavailable


class Line(BaseModel):
    sku: str
    quantity: int
    subtotal: Money


class Progress(BaseModel):
    status: str
    step: str | None


class OrderDetail(OrderItem):
    user_id: UUID
    lines: list[Line]
    fulfilment: Progress | None = Field(description="null before its fulfilment starts.")


class OrderAnswer(BaseModel):
    order: OrderDetail | Unavailable
