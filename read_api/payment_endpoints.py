"""Queries on payments: the ledger of an order's or a user's payments, and one payment."""

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
from readmodels.formats import money_text, stored_time, stored_uuid
from readmodels.fulfilment_catalog import PAYMENTS
from readmodels.sql import Row
from runtime.auth.http import Caller
from runtime.auth.policy import Access, require
from runtime.http.money import Money

router = APIRouter(prefix="/payments", tags=["payments"], route_class=ReadRoute)
CONTEXT = "payments"
"""A user reads their own payments: the ledger with `user_id` their own id, and each payment."""


class PaymentLedgerStatus(StrEnum):
    """A payment's status (`contexts.payments.domain.PaymentStatus`'s values; a test compares)."""

    REQUESTED = "requested"
    AUTHORIZED = "authorized"
    DECLINED = "declined"
    CAPTURING = "capturing"
    CAPTURED = "captured"
    VOIDING = "voiding"
    VOIDED = "voided"
    REFUNDING = "refunding"
    REFUNDED = "refunded"


PaymentStatus = Annotated[PaymentLedgerStatus, strictly(one_of(PaymentLedgerStatus))]

TABLE = KeysetTable(
    "payments",
    (
        "id", "order_id", "user_id", "amount_cents", "currency", "status", "reference",
        "reason", "created_at", "updated_at", "version",
    ),
    time_column="created_at",
)  # fmt: skip


class Payment(BaseModel):
    id: UUID
    order_id: UUID
    user_id: UUID
    amount: Money
    currency: str
    status: str
    reference: str | None
    """The provider's reference of the authorization."""
    reason: str | None
    """Why it was declined."""
    created_at: datetime
    updated_at: datetime
    version: int


class PaymentsPage(BaseModel):
    items: list[Payment]
    next_cursor: NextCursor


def _payment(row: Row) -> Payment:
    return Payment(
        id=stored_uuid(row[0]),
        order_id=stored_uuid(row[1]),
        user_id=stored_uuid(row[2]),
        amount=money_text(int(row[3]), row[4]),
        currency=row[4],
        status=row[5],
        reference=row[6],
        reason=row[7],
        created_at=stored_time(row[8]),
        updated_at=stored_time(row[9]),
        version=int(row[10]),
    )


@router.get("", response_model=PaymentsPage)
async def list_payments(
    caller: Caller,
    request: Request,
    reader: Annotated[Reader, reads(PAYMENTS)],
    order_id: Annotated[Uuid | None, Query(description="Payments of this order.")] = None,
    user_id: Annotated[Uuid | None, Query(description="Payments of this user.")] = None,
    status: Annotated[PaymentStatus | None, Query(description="Payments in this status.")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> PaymentsPage:
    """The payments ledger, by request time (then id): an order's payments, a user's, or all.
    A user lists their own only (`user_id`)."""
    require(caller, CONTEXT, Access.READ, owner=user_id)
    state = status.value if status else None
    filters = {"order_id": order_id, "user_id": user_id, "status": state}
    items, next_cursor = await keyset_page(
        request, reader, TABLE, filters, (cursor, limit), _payment
    )
    return PaymentsPage(items=items, next_cursor=next_cursor)


@router.get("/{payment_id}", response_model=Payment)
async def get_payment(
    caller: Caller,
    payment_id: Annotated[Uuid, Path(description="The payment's id.")],
    reader: Annotated[Reader, reads(PAYMENTS)],
) -> Payment:
    """One payment."""
    found = await reader.read(lambda stores: TABLE.one(stores, "id", payment_id))
    if found is None:
        raise reader.not_found(f"no payment {payment_id} in the read model")
    payment = _payment(found)
    require(caller, CONTEXT, Access.READ, owner=payment.user_id)
    return payment
