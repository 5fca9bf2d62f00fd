"""What the order-based document models remember per order: `order:<id>` with `user_id`,
`currency` and `paid_cents` (cents paid and not refunded), so later events can be attributed."""

from eventlog.envelope import EventEnvelope
from projections.document_ops import Bind, SetFields
from readmodels import keys
from readmodels.formats import cents

PAID = "paid"


def order_key(event: EventEnvelope) -> str:
    return keys.order_attribution_key(event.aggregate_id)


def remember_order(event: EventEnvelope) -> SetFields:
    """On Order.Created."""
    return SetFields(
        order_key(event),
        {
            "user_id": str(event.data["user_id"]),
            "currency": str(event.data["currency"]),
            "paid_cents": "0",
        },
    )


def paid_cents(event: EventEnvelope) -> int:
    """On Order.Paid: the amount paid."""
    return cents(event.data["amount"])


def remember_payment(event: EventEnvelope) -> SetFields:
    return SetFields(order_key(event), {"paid_cents": str(paid_cents(event))})


def forget_payment(event: EventEnvelope) -> SetFields:
    return SetFields(order_key(event), {"paid_cents": "0"})


def is_refund(event: EventEnvelope) -> bool:
    """On Order.Cancelled: was the order paid (so the payment is given back)?"""
    return bool(event.data.get("previous_status") == PAID)


def recall_order(event: EventEnvelope, *, with_payment: bool = False) -> Bind:
    fields = ("user_id", "currency", "paid_cents") if with_payment else ("user_id", "currency")
    return Bind(order_key(event), fields)
