"""How an order's fulfilment ended, as the saga, the order and the simulators' own ledgers tell
it, and the promise of DESIGN.md's "Sagas end" checked against that.

Every order ends exactly one of:
- shipped: the saga completed, the order is shipped, the provider recorded exactly one capture and
  charged the order's amount, the carrier dispatched its one booking;
- cancelled: the saga and the order are cancelled, the provider's net charge is zero and no hold
  is left (each authorization voided or refunded), no booking was dispatched;
- parked: the saga waits for a person, and the read API lists it among the parked ones.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from contexts.fulfilment import ids


@dataclass(frozen=True)
class Outcome:
    order_id: UUID
    amount: Decimal
    saga: str
    """The saga's status (`FulfilmentStatus`), or "missing"."""
    order: str
    captures: int
    """Capture operations the provider recorded for the order's payment."""
    net_charge: Decimal
    authorizations: tuple[str, ...]
    """The states of the provider's authorizations of the order's payment."""
    bookings: tuple[str, ...]
    """The states of the carrier's bookings of the order's shipment."""


def outcome(
    order_id: UUID,
    amount: Decimal,
    statuses: tuple[str, str],
    payments: dict[str, Any],
    carrier: dict[str, Any],
) -> Outcome:
    """The order's outcome: (saga status, order status) and the two simulators' ledgers."""
    prefix = f"{ids.payment_id(order_id)}:"
    operations = [op for op in payments["operations"] if op["key"].startswith(prefix)]
    references = {op["reference"] for op in operations if op.get("reference")}
    held = [payments["authorizations"][reference] for reference in sorted(references)]
    shipment = str(ids.shipment_id(order_id))
    bookings = [b["state"] for b in carrier["bookings"].values() if b["shipment_id"] == shipment]
    return Outcome(
        order_id=order_id,
        amount=amount,
        saga=statuses[0],
        order=statuses[1],
        captures=sum(1 for op in operations if op["kind"] == "capture"),
        net_charge=sum((Decimal(auth["net_charge"]) for auth in held), Decimal(0)),
        authorizations=tuple(auth["state"] for auth in held),
        bookings=tuple(bookings),
    )


def broken_promises(ended: Outcome) -> list[str]:
    """What in the outcome breaks the promise (empty if it holds); parked ones are checked
    against the read API apart."""
    if ended.saga == "completed":
        return _unless(
            ended,
            order=ended.order == "shipped",
            one_capture=ended.captures == 1,
            charged_the_amount=ended.net_charge == ended.amount,
            dispatched_once=ended.bookings == ("dispatched",),
        )
    if ended.saga == "cancelled":
        return _unless(
            ended,
            order=ended.order == "cancelled",
            nothing_charged=ended.net_charge == 0,
            no_hold_left=set(ended.authorizations) <= {"voided", "refunded"},
            nothing_dispatched="dispatched" not in ended.bookings,
        )
    if ended.saga == "parked":
        return []
    return [f"order {ended.order_id}: the saga ended {ended.saga}: {ended}"]


def _unless(ended: Outcome, **kept: bool) -> list[str]:
    return [
        f"order {ended.order_id}, {ended.saga}: not {name}: {ended}"
        for name, ok in kept.items()
        if not ok
    ]
