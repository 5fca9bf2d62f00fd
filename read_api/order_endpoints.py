"""Queries on orders: a filtered, paged listing and one order with its lines."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from read_api import schemas
from read_api.fulfilment_endpoints import fulfilment_row
from read_api.fulfilment_schemas import progress
from read_api.paging import cut, key_time, key_uuid, scope
from read_api.params import DEFAULT_LIMIT, Cursor, Instant, Limit, Status, Uuid
from read_api.problems import InvalidParameter
from read_api.reading import Reader, ReadRoute, reads
from read_api.resources import read_side
from read_api.stores import ReadStores, base
from read_api.stores.base import OrdersQuery
from readmodels.catalog import ORDERS
from readmodels.formats import money_text
from readmodels.fulfilment_catalog import FULFILMENTS
from readmodels.sql import Row
from runtime.auth.http import Caller
from runtime.auth.policy import Access, require

router = APIRouter(prefix="/orders", tags=["orders"], route_class=ReadRoute)
CONTEXT = "orders"
"""A user reads their own orders: the listing with `user_id` their own id, and each order."""


@router.get("", response_model=schemas.OrdersPage)
async def list_orders(
    caller: Caller,
    request: Request,
    reader: Annotated[Reader, reads(ORDERS)],
    user_id: Annotated[Uuid | None, Query(description="Orders of this user.")] = None,
    status: Annotated[Status | None, Query(description="Orders in this status.")] = None,
    placed_from: Annotated[
        Instant | None, Query(description="Placed at or after (ISO 8601 with offset).")
    ] = None,
    placed_to: Annotated[
        Instant | None, Query(description="Placed before (ISO 8601 with offset).")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> schemas.OrdersPage:
    """Orders by creation time (then id); by placement time when `placed_from` or `placed_to`
    is given, which also leaves out orders never placed."""
    require(caller, CONTEXT, Access.READ, owner=user_id)
    if placed_from is not None and placed_to is not None and placed_to <= placed_from:
        raise InvalidParameter("placed_to", "must be later than placed_from")
    filters = {
        "user_id": user_id,
        "status": status.value if status else None,
        "placed_from": placed_from.isoformat() if placed_from else None,
        "placed_to": placed_to.isoformat() if placed_to else None,
    }
    bound_to = scope("orders", filters)
    after = None
    if cursor is not None:
        last_time, last_id = read_side(request).cursors.decode(bound_to, cursor, 2)
        after = (key_time(last_time), key_uuid(last_id))
    query = OrdersQuery(
        user_id=user_id,
        status=status.value if status else None,
        placed_from=placed_from,
        placed_to=placed_to,
        after=after,
        limit=limit + 1,
    )
    rows = await reader.read(lambda stores: stores.relational.orders(query))

    def sort_key(order: base.OrderRow) -> list[str | int]:
        time = order.placed_at if query.by_placed_at else order.created_at
        assert time is not None
        return [time.isoformat(), str(order.id)]

    page, next_cursor = cut(rows, limit, sort_key, reader.side.cursors, bound_to)
    return schemas.OrdersPage(items=[_summary(o) for o in page], next_cursor=next_cursor)


@router.get("/{order_id}", response_model=schemas.Order)
async def get_order(
    caller: Caller,
    order_id: Annotated[Uuid, Path(description="The order's id.")],
    reader: Annotated[Reader, reads(ORDERS, FULFILMENTS)],
) -> schemas.Order:
    """One order with its lines, and its fulfilment's progress (null until one starts, or when
    the fulfilment context is not served)."""
    fulfilled = FULFILMENTS.contexts[0] in reader.side.contexts

    def order_and_fulfilment(stores: ReadStores) -> tuple[base.OrderRow | None, Row | None]:
        order = stores.relational.order(order_id)
        return order, fulfilment_row(stores, order_id) if fulfilled and order else None

    found, fulfilment = await reader.read(order_and_fulfilment)
    if found is None:
        raise reader.not_found(f"no order {order_id} in the read model")
    require(caller, CONTEXT, Access.READ, owner=found.user_id)
    lines = [
        schemas.OrderLine(
            sku=line.sku,
            quantity=line.quantity,
            unit_price=money_text(line.unit_price_cents, found.currency),
            subtotal=money_text(line.unit_price_cents * line.quantity, found.currency),
        )
        for line in found.lines or []
    ]
    return schemas.Order(
        **_summary(found).model_dump(), lines=lines, fulfilment=progress(fulfilment)
    )


def _summary(order: base.OrderRow) -> schemas.OrderSummary:
    return schemas.OrderSummary(
        id=order.id,
        user_id=order.user_id,
        currency=order.currency,
        status=order.status,
        total=money_text(order.total_cents, order.currency),
        line_count=order.line_count,
        created_at=order.created_at,
        placed_at=order.placed_at,
        paid_at=order.paid_at,
        shipped_at=order.shipped_at,
        cancelled_at=order.cancelled_at,
        cancel_reason=order.cancel_reason,
        version=order.version,
    )
