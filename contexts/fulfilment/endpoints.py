"""The fulfilment's operator endpoints: a saga's state now or as of T, and, for a parked saga,
retry (ask the participant again, with a new key), skip (go on past the step parked on, with the
rest of the compensation) or resolve (a person settled it by hand).

Retry, skip and resolve are for operators (or the scope `fulfilment:write`); the order's owner
may read its fulfilment's state."""

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from contexts.fulfilment import ids
from contexts.fulfilment.domain import OrderFulfilment
from contexts.fulfilment.not_found import named_by_order
from contexts.fulfilment.service import FulfilmentService
from runtime.auth.http import Caller
from runtime.auth.policy import Access, require
from write_api.as_of import AsOf
from write_api.command_http import CommandRoute, Headers, accepted, etag, run_blocking
from write_api.schemas import Accepted, Command, Id, Reason

if TYPE_CHECKING:  # the registry imports this router, and the stores import the registry
    from eventlog.stores import Services

router = APIRouter(prefix="/fulfilments", tags=["fulfilment"], route_class=CommandRoute)
CONTEXT = "fulfilment"


class StepState(BaseModel):
    name: str
    state: str
    at: str
    detail: dict[str, str]


class FulfilmentState(BaseModel):
    id: str
    order_id: str
    version: int
    definition_version: int
    status: str
    step: str | None
    attention: str | None
    reason: str | None
    amount: str
    currency: str
    order: str
    """The order's state as the saga knows it (also when an operator moved it)."""
    payment: str
    shipment: str
    steps: list[StepState]


class Skip(Command):
    note: Reason


class Resolve(Command):
    note: Reason


def fulfilment(request: Request) -> FulfilmentService:
    services: Services = request.app.state.services
    return services.application(FulfilmentService)


@router.get("/{order_id}", response_model=FulfilmentState)
async def get_fulfilment(
    caller: Caller, order_id: Id, request: Request, response: Response, as_of: AsOf
) -> FulfilmentState:
    """The fulfilment of an order, now or as of `as_of`: status, current step, each step's
    state, and why it needs attention if parked. The ETag is its version."""
    saga_id = ids.saga_id(order_id)

    def load() -> OrderFulfilment:
        if as_of is None:
            return fulfilment(request).saga(saga_id)
        return fulfilment(request).state_at(OrderFulfilment, saga_id, at=as_of)

    with named_by_order(order_id):
        saga = await run_blocking(request, load)
    require(caller, CONTEXT, Access.READ, owner=saga.user_id)
    response.headers["ETag"] = etag(saga.version)
    return FulfilmentState(
        id=str(saga.id),
        order_id=str(saga.order_id),
        version=saga.version,
        definition_version=saga.definition_version,
        status=str(saga.status),
        step=saga.step,
        attention=saga.attention,
        reason=saga.reason,
        amount=str(saga.amount),
        currency=saga.currency,
        order=saga.order,
        payment=saga.payment,
        shipment=saga.shipment,
        steps=[
            StepState(name=s.name, state=str(s.state), at=s.at.isoformat(), detail=s.detail)
            for s in saga.steps
        ],
    )


@router.post("/{order_id}/retry", response_model=Accepted)
async def retry(caller: Caller, order_id: Id, request: Request, headers: Headers) -> JSONResponse:
    """A parked saga asks its participant again (a new key, a new deadline)."""
    require(caller, CONTEXT, Access.WRITE)
    ctx = headers.context(request)
    saga_id = ids.saga_id(order_id)
    with named_by_order(order_id):
        result = await run_blocking(request, lambda: fulfilment(request).retry(ctx, saga_id))
    return accepted(CONTEXT, result, headers)


@router.post("/{order_id}/skip", response_model=Accepted)
async def skip(
    caller: Caller, order_id: Id, body: Skip, request: Request, headers: Headers
) -> JSONResponse:
    """A parked saga goes on past the compensation step it is parked on, with the rest of its
    compensation: a person saw to that step, or judged it not to be done (say which in `note`)."""
    require(caller, CONTEXT, Access.WRITE)
    ctx = headers.context(request, body)
    saga_id = ids.saga_id(order_id)
    with named_by_order(order_id):
        skipped = fulfilment(request).skip
        result = await run_blocking(request, lambda: skipped(ctx, saga_id, body.note))
    return accepted(CONTEXT, result, headers)


@router.post("/{order_id}/resolve", response_model=Accepted)
async def resolve(
    caller: Caller, order_id: Id, body: Resolve, request: Request, headers: Headers
) -> JSONResponse:
    """A parked saga ends as resolved: a person settled it by hand (say how in `note`)."""
    require(caller, CONTEXT, Access.WRITE)
    ctx = headers.context(request, body)
    saga_id = ids.saga_id(order_id)
    with named_by_order(order_id):
        resolved = fulfilment(request).resolve
        result = await run_blocking(request, lambda: resolved(ctx, saga_id, body.note))
    return accepted(CONTEXT, result, headers)
