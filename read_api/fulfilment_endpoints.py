"""Queries on fulfilments: an order's saga, and the sagas of one status (the parked ones are
those that need a person)."""

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from read_api.fulfilment_schemas import COLUMNS, Fulfilment, fulfilment
from read_api.keyset_tables import KeysetTable, keyset_page, one_of
from read_api.params import DEFAULT_LIMIT, Cursor, Limit, Uuid, strictly
from read_api.reading import Reader, ReadRoute, reads
from read_api.schemas import NextCursor
from read_api.stores import ReadStores
from readmodels.fulfilment_catalog import FULFILMENTS
from readmodels.sql import Row
from runtime.auth.http import Caller
from runtime.auth.policy import Access, require

router = APIRouter(prefix="/fulfilments", tags=["fulfilment"], route_class=ReadRoute)
CONTEXT = "fulfilment"
"""A user reads the fulfilments of their own orders, one by one; the listing is for operators
and `fulfilment:read`."""


class SagaStatus(StrEnum):
    """A saga's status (`definition.FulfilmentStatus`'s values; a test compares)."""

    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    PARKED = "parked"
    RESOLVED = "resolved"


FulfilmentStatus = Annotated[SagaStatus, strictly(one_of(SagaStatus))]

TABLE = KeysetTable("fulfilments", COLUMNS, time_column="started_at", id_column="order_id")


class FulfilmentsPage(BaseModel):
    items: list[Fulfilment]
    next_cursor: NextCursor


def fulfilment_row(stores: ReadStores, order_id: object) -> Row | None:
    """The order's row of `fulfilments` (the order detail shows it too)."""
    return TABLE.one(stores, "order_id", order_id)


@router.get("", response_model=FulfilmentsPage)
async def list_fulfilments(
    caller: Caller,
    request: Request,
    reader: Annotated[Reader, reads(FULFILMENTS)],
    status: Annotated[
        FulfilmentStatus | None, Query(description="Sagas in this status (`parked`: to handle).")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> FulfilmentsPage:
    """Fulfilments by start time (then order id), of one status or all (not for users)."""
    require(caller, CONTEXT, Access.READ)
    items, next_cursor = await keyset_page(
        request,
        reader,
        TABLE,
        {"status": status.value if status else None},
        (cursor, limit),
        fulfilment,
    )
    return FulfilmentsPage(items=items, next_cursor=next_cursor)


@router.get("/{order_id}", response_model=Fulfilment)
async def get_fulfilment(
    caller: Caller,
    order_id: Annotated[Uuid, Path(description="The order's id.")],
    reader: Annotated[Reader, reads(FULFILMENTS)],
) -> Fulfilment:
    """The fulfilment of an order: status, the step waited for, each step's state."""
    found = await reader.read(lambda stores: fulfilment_row(stores, order_id))
    if found is None:
        raise reader.not_found(f"no fulfilment of order {order_id} in the read model")
    answer = fulfilment(found)
    require(caller, CONTEXT, Access.READ, owner=answer.user_id)
    return answer
