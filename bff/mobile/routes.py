"""The mobile routes: the caller's name and totals, its orders in small keyset pages, and one
order with its lines and fulfilment. Every answer has a strong ETag (`bff.mobile.etags`)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Request, Response

from bff.downstream import Forwarded, ReadApi
from bff.mobile import schemas
from bff.mobile.etags import RESPONSES, tagged
from bff.params import CursorParam, Forwarding, Whose, invalid_query
from bff.principal import Caller
from bff.sections import concurrently, section
from bff.service import CALLER_PROBLEMS, USER_PROBLEMS, BffRoute, read_api
from domain.values import CANONICAL_UUID
from runtime.auth.policy import Forbidden

PAGE_DEFAULT = 10
PAGE_MAX = 25

IfNoneMatch = Annotated[
    str | None,
    Header(max_length=1000, description="The `ETag` of the answer the client holds."),
]
PageLimit = Annotated[
    str,
    Query(pattern=r"^[0-9]{1,2}$", description=f"Orders per page, 1 to {PAGE_MAX}."),
]
OrderId = Annotated[
    str,
    Path(pattern=CANONICAL_UUID.pattern, description="The order's id (either case)."),
]


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= PAGE_MAX:
        raise invalid_query("limit", f"must be 1 to {PAGE_MAX}, got {value}")
    return value


async def _me(api: ReadApi, forwarded: Forwarded, user_id: UUID) -> schemas.MeAnswer:
    async def profile() -> schemas.Me:
        return schemas.Me.model_validate(await api.get("profile", f"/users/{user_id}", forwarded))

    async def totals() -> schemas.Totals:
        found = await api.get("stats", f"/users/{user_id}/stats", forwarded)
        return schemas.Totals.model_validate(found)

    async with concurrently() as group:
        me, sums = group.create_task(section(profile())), group.create_task(section(totals()))
    return schemas.MeAnswer(profile=me.result(), totals=sums.result())


async def _orders(
    api: ReadApi, forwarded: Forwarded, user_id: UUID, cursor: str | None, limit: int
) -> schemas.OrdersPage:
    params: dict[str, str | int] = {"user_id": str(user_id), "limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    return schemas.OrdersPage.model_validate(await api.get("orders", "/orders", forwarded, params))


async def _order(
    api: ReadApi, forwarded: Forwarded, caller: Caller, order_id: str
) -> schemas.OrderDetail:
    found = await api.get("order", f"/orders/{UUID(order_id)}", forwarded)
    order = schemas.OrderDetail.model_validate(found)
    if not caller.may_read(order.user_id):
        raise Forbidden("the order is another user's")
    return order


router = APIRouter(prefix="/mobile", tags=["mobile"], route_class=BffRoute, responses=RESPONSES)


@router.get("/me", response_model=schemas.MeAnswer, openapi_extra=USER_PROBLEMS)
async def me(
    request: Request, forwarded: Forwarding, whose: Whose, if_none_match: IfNoneMatch = None
) -> Response:
    """The caller's name and order totals (an operator's: any user's, with `user_id`)."""
    answer = await _me(read_api(request), forwarded, whose.user_id())
    return tagged(answer, if_none_match)


@router.get("/orders", response_model=schemas.OrdersAnswer, openapi_extra=CALLER_PROBLEMS)
async def orders(
    request: Request,
    forwarded: Forwarding,
    whose: Whose,
    cursor: CursorParam = None,
    limit: PageLimit = str(PAGE_DEFAULT),
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The caller's orders (an operator's: any user's, with `user_id`), oldest first, a small
    page at a time."""
    page_size = _limit(limit)  # its 422 before the 403 of an operator naming no user
    page = _orders(read_api(request), forwarded, whose.user_id(), cursor, page_size)
    return tagged(schemas.OrdersAnswer(orders=await section(page)), if_none_match)


@router.get("/orders/{order_id}", response_model=schemas.OrderAnswer, openapi_extra=CALLER_PROBLEMS)
async def order(
    request: Request,
    caller: Caller,
    forwarded: Forwarding,
    order_id: OrderId,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """One of the caller's orders (an operator's: any), with its lines and fulfilment."""
    found = await section(_order(read_api(request), forwarded, caller, order_id))
    return tagged(schemas.OrderAnswer(order=found), if_none_match)
