"""Command endpoints of the payments context, and its command-side state.

Each command records an intent and answers at once; the provider is called later by the
payments worker, so no request waits on it. The saga sends these with the payment id it derives
from the order; an operator may send them too.
"""

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from contexts.participant_http import record_intent, state_answer
from contexts.payments.domain import Payment
from contexts.payments.service import PaymentsService
from runtime.auth.http import Caller
from runtime.auth.policy import Access, require
from write_api.as_of import AsOf
from write_api.command_http import CommandRoute, Headers, accepted, run_blocking
from write_api.schemas import Accepted, Command, Currency, Id, UnitPrice

if TYPE_CHECKING:  # the registry imports this router, and the stores import the registry
    from eventlog.stores import Services

router = APIRouter(prefix="/payments", tags=["payments"], route_class=CommandRoute)
CONTEXT = "payments"

Amount = UnitPrice
"""Money is spelled one way in the API: a decimal string with at most 2 decimals."""


class AuthorizePayment(Command):
    order_id: Id
    user_id: Id
    amount: Amount
    currency: Currency

    @property
    def money(self) -> Decimal:
        return Decimal(self.amount)


class PaymentState(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    version: int
    order_id: UUID
    user_id: UUID
    amount: Decimal
    currency: str
    status: str
    reference: str | None = Field(description="The provider's reference of the authorization.")
    decline_reason: str | None
    created_on: datetime
    modified_on: datetime


def payments(request: Request) -> PaymentsService:
    services: Services = request.app.state.services
    return services.application(PaymentsService)


@router.post("/{payment_id}/authorize", status_code=201, response_model=Accepted)
async def authorize(
    caller: Caller, payment_id: Id, body: AuthorizePayment, request: Request, headers: Headers
) -> JSONResponse:
    """Request the payment of an order at this id: `Requested`, then the provider's answer
    (`Authorized` or `Declined`). Sent again with the same body, it answers the payment as it is
    (201 either way) and appends nothing. An order has at most one live payment (409
    `value-taken`) until it is declined, voided or refunded."""
    require(caller, CONTEXT, Access.WRITE)
    ctx = headers.context(request, body)
    result = await run_blocking(
        request,
        lambda: payments(request).request_authorization(
            ctx, payment_id, body.order_id, body.user_id, body.money, body.currency
        ),
    )
    return accepted(CONTEXT, result, headers, created=True)


@router.post("/{payment_id}/capture", response_model=Accepted)
async def capture(
    caller: Caller, payment_id: Id, request: Request, headers: Headers
) -> JSONResponse:
    """Capture an authorized payment: `CaptureRequested`, then `Captured`. A no-op once asked."""
    return await record_intent(
        request,
        caller,
        headers,
        CONTEXT,
        lambda ctx: payments(request).request_capture(ctx, payment_id),
    )


@router.post("/{payment_id}/void", response_model=Accepted)
async def void(caller: Caller, payment_id: Id, request: Request, headers: Headers) -> JSONResponse:
    """Release an authorization not captured: `VoidRequested`, then `Voided`. A no-op once
    asked."""
    return await record_intent(
        request,
        caller,
        headers,
        CONTEXT,
        lambda ctx: payments(request).request_void(ctx, payment_id),
    )


@router.post("/{payment_id}/refund", response_model=Accepted)
async def refund(
    caller: Caller, payment_id: Id, request: Request, headers: Headers
) -> JSONResponse:
    """Give back a captured payment in full: `RefundRequested`, then `Refunded`. A no-op once
    asked."""
    return await record_intent(
        request,
        caller,
        headers,
        CONTEXT,
        lambda ctx: payments(request).request_refund(ctx, payment_id),
    )


@router.get("/{payment_id}", response_model=PaymentState)
async def get_payment(
    caller: Caller, payment_id: Id, request: Request, response: Response, as_of: AsOf
) -> PaymentState:
    """The payment now, or as of `as_of`; the ETag is its version."""
    return await state_answer(
        request,
        response,
        caller,
        CONTEXT,
        lambda: payments(request).state(Payment, payment_id, as_of),
        PaymentState,
    )
