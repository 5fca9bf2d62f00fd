"""The Shipment aggregate: the delivery of one order, booked with a carrier.

    requested -> scheduled -> dispatching -> dispatched -> delivered
        |             \\-> cancelling -> cancelled
        \\-> failed

`requested`, `dispatching` and `cancelling` await the carrier's outcome of one operation. A
shipment is cancelled only before it leaves (once dispatched, it is on its way); `failed` means
no carrier could take it.

A cancellation asked for while the booking is still awaited is remembered (`CancelWanted`) and
carried out once the carrier answers: the booking call may be in flight, or may have reached the
carrier before a crash, so only its outcome tells whether there is a booking to cancel. Booked,
the shipment goes on to `cancelling` at once; refused, it is `failed` and nothing is left to
cancel.
"""

from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from contexts.participant import AwaitingProvider
from domain.errors import DomainError
from domain.values import bounded_text

MAX_CARRIER_LENGTH = 100
MAX_REFERENCE_LENGTH = 200
MAX_REASON_LENGTH = 500


class ShipmentStatus(StrEnum):
    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    FAILED = "failed"
    DISPATCHING = "dispatching"
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


class Shipment(AwaitingProvider):
    """The shipment of one order to one user."""

    AWAITS: ClassVar[dict[str, str]] = {
        ShipmentStatus.REQUESTED: "schedule",
        ShipmentStatus.DISPATCHING: "dispatch",
        ShipmentStatus.CANCELLING: "cancel",
    }

    class Requested(Aggregate.Created):
        class_version = 1
        order_id: UUID
        user_id: UUID

    class CancelWanted(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.cancel_wanted = True

    class Scheduled(Aggregate.Event):
        class_version = 1
        carrier: str
        reference: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = ShipmentStatus.SCHEDULED
            aggregate.carrier = self.carrier
            aggregate.reference = self.reference

    class Failed(Aggregate.Event):
        class_version = 1
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = ShipmentStatus.FAILED
            aggregate.failure_reason = self.reason

    class DispatchRequested(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = ShipmentStatus.DISPATCHING

    class Dispatched(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = ShipmentStatus.DISPATCHED

    class Delivered(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = ShipmentStatus.DELIVERED

    class CancelRequested(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = ShipmentStatus.CANCELLING

    class Cancelled(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = ShipmentStatus.CANCELLED

    def __init__(self, order_id: UUID, user_id: UUID) -> None:
        self.order_id = order_id
        self.user_id = user_id
        self.status = ShipmentStatus.REQUESTED
        self.carrier: str | None = None
        self.reference: str | None = None
        """The carrier's reference of the booking (dispatch and cancel name it)."""
        self.failure_reason: str | None = None
        self.cancel_wanted = False
        """Cancel as soon as the booking is made (asked for while it was awaited)."""

    @classmethod
    def request(cls, shipment_id: UUID, order_id: UUID, user_id: UUID) -> "Shipment":
        return cls._create(cls.Requested, id=shipment_id, order_id=order_id, user_id=user_id)

    def restore_types(self) -> None:
        self.status = ShipmentStatus(self.status)  # a StrEnum is stored as its plain string

    def require_same_request(self, order_id: UUID, user_id: UUID) -> None:
        """A request again at this shipment's id must be the one it was created by."""
        if (order_id, user_id) != (self.order_id, self.user_id):
            raise DomainError(
                f"shipment {self.id} was requested for order {self.order_id} to user"
                f" {self.user_id}; a shipment's request cannot change"
            )

    # The carrier's outcomes

    def record_booking(self, carrier: str, reference: str) -> None:
        self._require(ShipmentStatus.REQUESTED, action="record a booking")
        carrier = bounded_text(carrier, field="carrier", max_length=MAX_CARRIER_LENGTH)
        reference = bounded_text(reference, field="reference", max_length=MAX_REFERENCE_LENGTH)
        self.trigger_event(self.Scheduled, carrier=carrier, reference=reference)
        if self.cancel_wanted:
            self.trigger_event(self.CancelRequested)

    def record_failure(self, reason: str) -> None:
        self._require(ShipmentStatus.REQUESTED, action="record a failure")
        reason = bounded_text(reason, field="reason", max_length=MAX_REASON_LENGTH)
        self.trigger_event(self.Failed, reason=reason)

    def record_dispatch(self) -> None:
        self._require(ShipmentStatus.DISPATCHING, action="record a dispatch")
        self.trigger_event(self.Dispatched)

    def record_cancellation(self) -> None:
        self._require(ShipmentStatus.CANCELLING, action="record a cancellation")
        self.trigger_event(self.Cancelled)

    # Intents: dispatch and cancel are carried out by the carrier later; delivery is reported

    def request_dispatch(self) -> None:
        self._request(
            self.DispatchRequested,
            action="dispatch",
            source=ShipmentStatus.SCHEDULED,
            done=(ShipmentStatus.DISPATCHING, ShipmentStatus.DISPATCHED, ShipmentStatus.DELIVERED),
        )

    def request_cancellation(self) -> None:
        """Cancel a scheduled shipment through the carrier; one still waiting for its booking,
        once booked."""
        if self.status is ShipmentStatus.REQUESTED:
            if not self.cancel_wanted:
                self.trigger_event(self.CancelWanted)
            return
        gone = (ShipmentStatus.DISPATCHING, ShipmentStatus.DISPATCHED, ShipmentStatus.DELIVERED)
        self._request(
            self.CancelRequested,
            action="cancel",
            source=ShipmentStatus.SCHEDULED,
            done=(ShipmentStatus.CANCELLING, ShipmentStatus.CANCELLED),
            hint="; a shipment on its way cannot be called back" if self.status in gone else "",
        )

    def deliver(self) -> None:
        """An operator's report that the parcel arrived."""
        self._request(
            self.Delivered,
            action="deliver",
            source=ShipmentStatus.DISPATCHED,
            done=(ShipmentStatus.DELIVERED,),
        )
