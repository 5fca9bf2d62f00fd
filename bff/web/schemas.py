"""The web dashboard's answer. Its sections are read from the read API's answers (fields the
dashboard does not show are left out); each may be `Unavailable` instead."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from bff.sections import Unavailable
from runtime.http.money import Money


class Profile(BaseModel):
    id: UUID
    name: str
    email: str
    city: str | None
    country: str | None
    hobbies: list[str]
    active: bool


class Stats(BaseModel):
    orders: int = Field(description="Orders the user created.")
    spent: dict[str, Money] = Field(description="Paid per currency, net of refunds.")


class FulfilmentStatus(BaseModel):
    status: str = Field(
        description="running, compensating, completed, cancelled, parked or resolved."
    )
    step: str | None = Field(description="The step waited for.")
    attention: str | None = Field(description="Why a parked fulfilment needs a person.")


class RecentOrder(BaseModel):
    id: UUID
    status: str
    currency: str
    total: Money
    line_count: int
    created_at: datetime
    placed_at: datetime | None
    fulfilment: FulfilmentStatus | Unavailable | None = Field(
        default=None, description="Its fulfilment's progress; null before one starts."
    )


class RecentOrders(BaseModel):
    items: list[RecentOrder] = Field(description="The latest orders, newest first.")
    more: bool = Field(description="Whether the user has older orders.")


class Standing(BaseModel):
    currency: str
    spent: Money
    rank: int | None = Field(
        description="Place among the top spenders of the currency (1 is first); null when"
        " below the leaderboard's depth."
    )


class Leaderboard(BaseModel):
    depth: int = Field(description="How many top spenders per currency were searched.")
    standings: list[Standing] = Field(description="One per currency the user spent in.")


class Dashboard(BaseModel):
    user_id: UUID
    profile: Profile | Unavailable
    stats: Stats | Unavailable
    recent_orders: RecentOrders | Unavailable
    leaderboard: Leaderboard | Unavailable
