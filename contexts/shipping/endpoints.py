"""Command endpoints of the shipping context (at /shipments), and its command-side state.

Scheduling, dispatch and cancellation record an intent and answer at once; the carrier is called
later by the shipping worker, so no request waits on it. The saga sends these with the shipment
id it derives from the order; an operator may send them too, and reports deliveries.
"""

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from contexts.participant_http import record_intent, state_answer
from contexts.shipping.domain import Shipment
from contexts.shipping.service import ShippingService
from runtime.auth.http import Caller
from runtime.auth.policy import Access, require
from write_api.as_of import AsOf
from write_api.command_http import CommandRoute, Headers, accepted, run_blocking
from write_api.schemas import Accepted, Command, Id

if TYPE_CHECKING:  # the registry imports this router, and the stores import the registry
    from eventlog.stores import Services

PREFIX = "/shipments"
router = APIRouter(prefix=PREFIX, tags=["shipping"], route_class=CommandRoute)
CONTEXT = "shipping"


class ScheduleShipment(Command):
    order_id: Id
    user_id: Id


class ShipmentState(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    version: int
    order_id: UUID
    user_id: UUID
    status: str
    carrier: str | None
    reference: str | None = Field(description="The carrier's reference of the booking.")
    failure_reason: str | None
    created_on: datetime
    modified_on: datetime


def shipping(request: Request) -> ShippingService:
    services: Services = request.app.state.services
    return services.application(ShippingService)


@router.post("/{shipment_id}/schedule", status_code=201, response_model=Accepted)
async def schedule(
    caller: Caller, shipment_id: Id, body: ScheduleShipment, request: Request, headers: Headers
) -> JSONResponse:
    """Request the shipment of an order at this id: `Requested`, then the carrier's answer
    (`Scheduled` or `Failed`). Sent again with the same body, it answers the shipment as it is
    (201 either way) and appends nothing."""
    require(caller, CONTEXT, Access.WRITE)
    ctx = headers.context(request, body)
    result = await run_blocking(
        request,
        lambda: shipping(request).request_shipment(ctx, shipment_id, body.order_id, body.user_id),
    )
    response = accepted(CONTEXT, result, headers, created=True)
    response.headers["Location"] = f"{PREFIX}/{result.id}"  # the context is named otherwise
    return response


@router.post("/{shipment_id}/dispatch", response_model=Accepted)
async def dispatch(
    caller: Caller, shipment_id: Id, request: Request, headers: Headers
) -> JSONResponse:
    """Hand a scheduled shipment to its carrier: `DispatchRequested`, then `Dispatched`. A no-op
    once asked."""
    return await record_intent(
        request,
        caller,
        headers,
        CONTEXT,
        lambda ctx: shipping(request).request_dispatch(ctx, shipment_id),
    )


@router.post("/{shipment_id}/cancel", response_model=Accepted)
async def cancel(
    caller: Caller, shipment_id: Id, request: Request, headers: Headers
) -> JSONResponse:
    """Cancel a scheduled shipment's booking: `CancelRequested`, then `Cancelled`. Refused once
    dispatched; a no-op once asked."""
    return await record_intent(
        request,
        caller,
        headers,
        CONTEXT,
        lambda ctx: shipping(request).request_cancellation(ctx, shipment_id),
    )


@router.post("/{shipment_id}/deliver", response_model=Accepted)
async def deliver(
    caller: Caller, shipment_id: Id, request: Request, headers: Headers
) -> JSONResponse:
    """An operator reports a dispatched shipment delivered: `Delivered`. A no-op once done."""
    return await record_intent(
        request, caller, headers, CONTEXT, lambda ctx: shipping(request).deliver(ctx, shipment_id)
    )


@router.get("/{shipment_id}", response_model=ShipmentState)
async def get_shipment(
    caller: Caller, shipment_id: Id, request: Request, response: Response, as_of: AsOf
) -> ShipmentState:
    """The shipment now, or as of `as_of`; the ETag is its version."""
    return await state_answer(
        request,
        response,
        caller,
        CONTEXT,
        lambda: shipping(request).state(Shipment, shipment_id, as_of),
        ShipmentState,
    )
