"""The shipping application: participant commands (each records an intent and answers at once)
and the outcome handlers the worker calls with the carrier's answers."""

from typing import ClassVar
from uuid import UUID

from contexts.participant import OperationJobs, ParticipantService
from contexts.shipping.domain import MAX_REASON_LENGTH, Shipment
from contexts.shipping.ports import Booking
from domain.service import CommandContext, CommandResult, Decision
from domain.values import legible_text

CARRIER_JOBS = "carrier"
REFUSED = "no carrier could take the shipment"
"""The reason of a refusal whose own reason shows nothing."""


class ShippingService(ParticipantService):
    name: ClassVar[str] = "shipping"  # type: ignore[misc]
    operation_jobs = OperationJobs(
        CARRIER_JOBS,
        starts={
            Shipment.Requested: "schedule",
            Shipment.DispatchRequested: "dispatch",
            Shipment.CancelRequested: "cancel",
        },
        finishes={
            Shipment.Scheduled: "schedule",
            Shipment.Failed: "schedule",
            Shipment.Dispatched: "dispatch",
            Shipment.Cancelled: "cancel",
        },
    )

    def request_shipment(
        self, ctx: CommandContext, shipment_id: UUID, order_id: UUID, user_id: UUID
    ) -> CommandResult:
        """Create the shipment at the caller's id (the saga derives it from the order); asked
        again, answer its current state."""
        return self.create_at(
            ctx,
            Shipment,
            shipment_id,
            lambda: Decision(Shipment.request(shipment_id, order_id, user_id)),
            lambda shipment: shipment.require_same_request(order_id, user_id),
        )

    def request_dispatch(self, ctx: CommandContext, shipment_id: UUID) -> CommandResult:
        return self.update(ctx, Shipment, shipment_id, lambda s: s.request_dispatch())

    def request_cancellation(self, ctx: CommandContext, shipment_id: UUID) -> CommandResult:
        return self.update(ctx, Shipment, shipment_id, lambda s: s.request_cancellation())

    def deliver(self, ctx: CommandContext, shipment_id: UUID) -> CommandResult:
        return self.update(ctx, Shipment, shipment_id, lambda s: s.deliver())

    def shipment(self, shipment_id: UUID) -> Shipment:
        return self.load(Shipment, shipment_id)

    # Outcomes: each returns False, writing nothing, if the shipment no longer awaits it

    def complete_scheduling(self, shipment_id: UUID, booking: Booking) -> bool:
        def record(shipment: Shipment) -> None:
            if booking.accepted:
                shipment.record_booking(booking.carrier or "", booking.reference or "")
            else:
                reason = booking.reason or ""  # the carrier's words: made legible
                shipment.record_failure(
                    legible_text(reason, max_length=MAX_REASON_LENGTH, fallback=REFUSED)
                )

        return self.complete(Shipment, shipment_id, "schedule", record)

    def complete_dispatch(self, shipment_id: UUID) -> bool:
        return self.complete(Shipment, shipment_id, "dispatch", lambda s: s.record_dispatch())

    def complete_cancellation(self, shipment_id: UUID) -> bool:
        return self.complete(Shipment, shipment_id, "cancel", lambda s: s.record_cancellation())
