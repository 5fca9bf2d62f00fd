"""Queries on shipments: the board (by status), and one shipment."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from read_api.keyset_tables import KeysetTable, keyset_page, one_of
from read_api.params import DEFAULT_LIMIT, Cursor, Limit, Uuid, strictly
from read_api.reading import Reader, ReadRoute, reads
from read_api.schemas import NextCursor
from readmodels.formats import stored_time, stored_uuid
from readmodels.fulfilment_catalog import SHIPMENTS
from readmodels.sql import Row
from runtime.auth.http import Caller
from runtime.auth.policy import Access, require

router = APIRouter(prefix="/shipments", tags=["shipping"], route_class=ReadRoute)
CONTEXT = "shipping"
"""A user reads their own shipments, one by one; the board is for operators and `shipping:read`."""


class ShipmentBoardStatus(StrEnum):
    """A shipment's status (`contexts.shipping.domain.ShipmentStatus`'s values; a test compares)."""

    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    FAILED = "failed"
    DISPATCHING = "dispatching"
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


ShipmentStatus = Annotated[ShipmentBoardStatus, strictly(one_of(ShipmentBoardStatus))]

TABLE = KeysetTable(
    "shipments",
    (
        "id", "order_id", "user_id", "status", "carrier", "reference", "reason",
        "created_at", "updated_at", "version",
    ),
    time_column="created_at",
)  # fmt: skip


class Shipment(BaseModel):
    id: UUID
    order_id: UUID
    user_id: UUID
    status: str
    carrier: str | None
    reference: str | None
    """The carrier's reference of the booking."""
    reason: str | None
    """Why no carrier could take it."""
    created_at: datetime
    updated_at: datetime
    version: int


class ShipmentsPage(BaseModel):
    items: list[Shipment]
    next_cursor: NextCursor


def _shipment(row: Row) -> Shipment:
    return Shipment(
        id=stored_uuid(row[0]),
        order_id=stored_uuid(row[1]),
        user_id=stored_uuid(row[2]),
        status=row[3],
        carrier=row[4],
        reference=row[5],
        reason=row[6],
        created_at=stored_time(row[7]),
        updated_at=stored_time(row[8]),
        version=int(row[9]),
    )


@router.get("", response_model=ShipmentsPage)
async def shipments_board(
    caller: Caller,
    request: Request,
    reader: Annotated[Reader, reads(SHIPMENTS)],
    status: Annotated[ShipmentStatus | None, Query(description="Shipments in this status.")] = None,
    order_id: Annotated[Uuid | None, Query(description="Shipments of this order.")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> ShipmentsPage:
    """The shipments board, by request time (then id), of one status or all (not for users)."""
    require(caller, CONTEXT, Access.READ)
    filters = {"status": status.value if status else None, "order_id": order_id}
    items, next_cursor = await keyset_page(
        request, reader, TABLE, filters, (cursor, limit), _shipment
    )
    return ShipmentsPage(items=items, next_cursor=next_cursor)


@router.get("/{shipment_id}", response_model=Shipment)
async def get_shipment(
    caller: Caller,
    shipment_id: Annotated[Uuid, Path(description="The shipment's id.")],
    reader: Annotated[Reader, reads(SHIPMENTS)],
) -> Shipment:
    """One shipment."""
    found = await reader.read(lambda stores: TABLE.one(stores, "id", shipment_id))
    if found is None:
        raise reader.not_found(f"no shipment {shipment_id} in the read model")
    shipment = _shipment(found)
    require(caller, CONTEXT, Access.READ, owner=shipment.user_id)
    return shipment
