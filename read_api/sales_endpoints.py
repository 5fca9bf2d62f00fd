"""Queries on money: daily sales per currency, and the top spenders of a currency."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from read_api import schemas
from read_api.paging import cut, key_day, key_text, scope
from read_api.params import DEFAULT_LIMIT, CurrencyCode, Cursor, Day, Limit
from read_api.problems import InvalidParameter
from read_api.reading import Reader, ReadRoute, reads
from read_api.resources import read_side
from read_api.stores.base import SalesQuery
from readmodels.catalog import DAILY_SALES, TOP_SPENDERS
from readmodels.formats import money_text
from runtime.auth.http import Caller
from runtime.auth.policy import Access, require

router = APIRouter(tags=["sales"], route_class=ReadRoute)
CONTEXT = "orders"
"""Daily sales are for operators and `orders:read`; the leaderboard for any caller with a
valid token (a user's dashboard shows their rank in it)."""


@router.get("/sales/daily", response_model=schemas.SalesPage)
async def daily_sales(
    caller: Caller,
    request: Request,
    reader: Annotated[Reader, reads(DAILY_SALES)],
    currency: Annotated[CurrencyCode | None, Query(description="ISO 4217 code.")] = None,
    day_from: Annotated[
        Day | None, Query(alias="from", description="First UTC day (inclusive).")
    ] = None,
    day_to: Annotated[
        Day | None, Query(alias="to", description="Last UTC day (inclusive).")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> schemas.SalesPage:
    """Payments and refunds per UTC day and currency, by day then currency."""
    require(caller, CONTEXT, Access.READ)
    if day_from is not None and day_to is not None and day_to < day_from:
        raise InvalidParameter("to", "may not be before from")
    filters = {"currency": currency, "from": day_from, "to": day_to}
    bound_to = scope("daily_sales", filters)
    after = None
    if cursor is not None:
        last_day, last_currency = read_side(request).cursors.decode(bound_to, cursor, 2)
        after = (key_day(last_day), key_text(last_currency))
    query = SalesQuery(
        currency=currency, day_from=day_from, day_to=day_to, after=after, limit=limit + 1
    )
    rows = await reader.read(lambda stores: stores.relational.daily_sales(query))
    page, next_cursor = cut(
        rows, limit, lambda r: [r.day.isoformat(), r.currency], reader.side.cursors, bound_to
    )
    items = [
        schemas.DailySales(
            day=r.day,
            currency=r.currency,
            orders_paid=r.orders_paid,
            paid=money_text(r.paid_cents, r.currency),
            orders_refunded=r.orders_refunded,
            refunded=money_text(r.refunded_cents, r.currency),
            net=money_text(r.paid_cents - r.refunded_cents, r.currency),
        )
        for r in page
    ]
    return schemas.SalesPage(items=items, next_cursor=next_cursor)


@router.get("/leaderboards/{currency}/top-spenders", response_model=schemas.Leaderboard)
async def top_spenders(
    caller: Caller,
    currency: Annotated[CurrencyCode, Path(description="ISO 4217 code, any case.")],
    reader: Annotated[Reader, reads(TOP_SPENDERS)],
    limit: Limit = DEFAULT_LIMIT,
) -> schemas.Leaderboard:
    """The users who spent most in `currency`, most first (ties by user id, descending)."""
    spenders = await reader.read(lambda stores: stores.key_value.top_spenders(currency, limit))
    return schemas.Leaderboard(
        currency=currency,
        items=[
            schemas.Spender(rank=rank, user_id=s.user_id, spent=money_text(s.cents, currency))
            for rank, s in enumerate(spenders, start=1)
        ],
    )
