"""Command endpoints of the orders context, and its command-side state."""

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from domain.currencies import amount_text
from domain.orders.order import Order
from domain.orders.service import OrdersService
from runtime.auth.http import Caller
from runtime.auth.policy import Access, require
from write_api.as_of import AsOf
from write_api.authz import require_owner
from write_api.command_http import CommandRoute, Headers, accepted, etag, run_blocking
from write_api.replicas import AfterPosition, wait_for_replica
from write_api.schemas import (
    Accepted,
    AddLine,
    CancelOrder,
    CreateOrder,
    Id,
    OrderLineState,
    OrderState,
    Sku,
)

if TYPE_CHECKING:  # the registry imports this router, and the stores import the registry
    from eventlog.stores import Services

router = APIRouter(prefix="/orders", tags=["orders"], route_class=CommandRoute)
"""A user may open orders for themselves and command and read their own; paying and shipping
an order are the fulfilment saga's (scope `orders:write`) and operators'."""
CONTEXT = "orders"


def orders(request: Request) -> OrdersService:
    services: Services = request.app.state.services
    return services.application(OrdersService)


async def require_own_order(request: Request, caller: Caller, order_id: Id) -> None:
    await require_owner(
        request, caller, CONTEXT, Access.WRITE, lambda: orders(request).order(order_id).user_id
    )


@router.post("", status_code=201, response_model=Accepted)
async def create_order(
    caller: Caller,
    body: CreateOrder,
    request: Request,
    headers: Headers,
    position: AfterPosition = None,
) -> JSONResponse:
    """Open an order for an active user. Orders knows users from its own replica of their
    events: a user registered a moment ago may not be in it yet (send the registration's
    `position`, or retry after the 422)."""
    require(caller, CONTEXT, Access.WRITE, owner=body.user_id)
    await wait_for_replica(request, CONTEXT, position)
    ctx = headers.context(request, body)
    result = await run_blocking(
        request, lambda: orders(request).create_order(ctx, body.user_id, body.currency)
    )
    return accepted(CONTEXT, result, headers, created=True)


@router.get("/{order_id}", response_model=OrderState)
async def get_order(
    caller: Caller, order_id: Id, request: Request, response: Response, as_of: AsOf
) -> OrderState:
    """The order now, or as of `as_of`; the ETag is its version."""

    def load() -> Order:
        if as_of is None:
            return orders(request).order(order_id)
        return orders(request).state_at(Order, order_id, at=as_of)

    order = await run_blocking(request, load)
    require(caller, CONTEXT, Access.READ, owner=order.user_id)
    response.headers["ETag"] = etag(order.version)
    return OrderState(
        id=order.id,
        version=order.version,
        user_id=order.user_id,
        currency=order.currency,
        status=str(order.status),
        lines=[
            OrderLineState(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=amount_text(line.unit_price, order.currency),
                subtotal=amount_text(line.subtotal, order.currency),
            )
            for line in order.lines.values()
        ],
        total=amount_text(order.total, order.currency),
        created_on=order.created_on,
        modified_on=order.modified_on,
    )


@router.post("/{order_id}/lines", response_model=Accepted)
async def add_line(
    caller: Caller,
    order_id: Id,
    body: AddLine,
    request: Request,
    headers: Headers,
) -> JSONResponse:
    await require_own_order(request, caller, order_id)
    ctx = headers.context(request, body)
    result = await run_blocking(
        request,
        lambda: orders(request).add_line(ctx, order_id, body.sku, body.quantity, body.price),
    )
    return accepted(CONTEXT, result, headers)


@router.delete("/{order_id}/lines/{sku}", response_model=Accepted)
async def remove_line(
    caller: Caller, order_id: Id, sku: Sku, request: Request, headers: Headers
) -> JSONResponse:
    await require_own_order(request, caller, order_id)
    ctx = headers.context(request)
    result = await run_blocking(request, lambda: orders(request).remove_line(ctx, order_id, sku))
    return accepted(CONTEXT, result, headers)


@router.post("/{order_id}/place", response_model=Accepted)
async def place(caller: Caller, order_id: Id, request: Request, headers: Headers) -> JSONResponse:
    await require_own_order(request, caller, order_id)
    ctx = headers.context(request)
    result = await run_blocking(request, lambda: orders(request).place(ctx, order_id))
    return accepted(CONTEXT, result, headers)


@router.post("/{order_id}/pay", response_model=Accepted)
async def mark_paid(
    caller: Caller, order_id: Id, request: Request, headers: Headers
) -> JSONResponse:
    require(caller, CONTEXT, Access.WRITE)
    ctx = headers.context(request)
    result = await run_blocking(request, lambda: orders(request).mark_paid(ctx, order_id))
    return accepted(CONTEXT, result, headers)


@router.post("/{order_id}/ship", response_model=Accepted)
async def mark_shipped(
    caller: Caller, order_id: Id, request: Request, headers: Headers
) -> JSONResponse:
    require(caller, CONTEXT, Access.WRITE)
    ctx = headers.context(request)
    result = await run_blocking(request, lambda: orders(request).mark_shipped(ctx, order_id))
    return accepted(CONTEXT, result, headers)


@router.post("/{order_id}/cancel", response_model=Accepted)
async def cancel(
    caller: Caller,
    order_id: Id,
    body: CancelOrder,
    request: Request,
    headers: Headers,
) -> JSONResponse:
    await require_own_order(request, caller, order_id)
    ctx = headers.context(request, body)
    result = await run_blocking(request, lambda: orders(request).cancel(ctx, order_id, body.reason))
    return accepted(CONTEXT, result, headers)
