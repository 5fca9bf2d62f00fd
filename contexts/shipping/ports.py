"""What the shipping context needs from a carrier, as the domain sees it.

Every call carries an idempotency key: the carrier performs each operation once per key and
answers a repeated key with the first answer.
"""

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID


class CarrierUnavailable(Exception):
    """The carrier could not be reached or failed (timeout, 5xx, outage, open breaker): the
    outcome is unknown, so the call is retried later with the same key."""


@dataclass(frozen=True)
class Booking:
    accepted: bool
    carrier: str | None = None
    reference: str | None = None
    """The carrier's reference of an accepted booking (dispatch and cancel name it)."""
    reason: str | None = None
    """Why no carrier could take the shipment."""


class Carrier(Protocol):
    def schedule(self, key: str, shipment_id: UUID, order_id: UUID) -> Booking: ...

    def dispatch(self, key: str, reference: str) -> None: ...

    def cancel(self, key: str, reference: str) -> None: ...
