"""`strata-carrier`: a carrier, simulated, as an HTTP process of its own.

A booking of a shipment is accepted (by one of a few carriers, with a reference) or refused; an
accepted booking is dispatched, or cancelled before it is dispatched. Every operation takes an
`Idempotency-Key` (see `simulators.control`).

Refusals follow `/control`: the orders in `refuse_orders`, and a share `refuse_rate` of the
others. `GET /control/ledger` lists every operation and each booking's state.
"""

import random
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from uuid import UUID

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from runtime.http.problem_types import NOT_FOUND, RULE_VIOLATED
from simulators.control import (
    Faults,
    IdempotencyKey,
    Simulator,
    create_simulator_app,
    operations_router,
    simulator_main,
)
from simulators.ledger import Json, Ledger, SimulatorError

CARRIERS = ("Swiftpost", "Northline", "Cargo Owl")


class CarrierControl(Faults):
    refuse_orders: list[UUID] = Field(
        default_factory=list, description="Refuse the shipments of these orders."
    )
    refuse_rate: float = Field(0, ge=0, le=1, description="Share of other shipments refused.")


class Shipment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shipment_id: UUID
    order_id: UUID


@dataclass
class Booking:
    shipment_id: str
    order_id: str
    carrier: str
    state: str = "booked"  # then dispatched or cancelled


class CarrierLedger(Ledger):
    def summary(self) -> Json:
        return {**super().summary(), "bookings": self.records()}

    def book(self, shipment: Shipment, control: CarrierControl) -> Json:
        refused = shipment.order_id in control.refuse_orders
        if refused or random.random() < control.refuse_rate:
            return {"state": "refused", "reason": "no carrier can take the shipment"}
        carrier = CARRIERS[shipment.shipment_id.int % len(CARRIERS)]
        reference = f"bk_{uuid.uuid4().hex}"
        booking = Booking(str(shipment.shipment_id), str(shipment.order_id), carrier)
        self.keep(reference, asdict(booking))
        return {"state": "accepted", "carrier": carrier, "reference": reference}

    def move(self, reference: str, operation: str, to: str) -> Json:
        """Dispatch or cancel a booking: only a booking that is still just booked."""
        record = self.find(reference)
        if record is None:
            raise SimulatorError(NOT_FOUND, f"no booking {reference!r}")
        booking = Booking(**record)
        if booking.state != "booked":
            raise SimulatorError(
                RULE_VIOLATED, f"cannot {operation} a booking that is {booking.state}"
            )
        booking.state = to
        self.keep(reference, asdict(booking))
        return {"reference": reference, "state": to}


def create_app(ledger: Path | str) -> FastAPI:
    """The app, its ledger in the SQLite file `ledger` (opened at the first request)."""
    simulator = Simulator(CarrierControl, CarrierLedger(ledger))
    router = operations_router(simulator)

    @router.post("/bookings")
    async def book(body: Shipment, key: IdempotencyKey) -> Json:
        """Book: `{state: accepted, carrier, reference}` or `{state: refused, reason}`."""
        request = {"kind": "book", **body.model_dump(mode="json")}
        return await simulator.perform(key, request, lambda ledger, c: ledger.book(body, c))

    @router.post("/bookings/{reference}/dispatch")
    async def dispatch(reference: str, key: IdempotencyKey) -> Json:
        """Hand the shipment over; 409 unless the booking is still just booked."""
        request = {"kind": "dispatch", "reference": reference}
        return await simulator.perform(
            key, request, lambda ledger, _: ledger.move(reference, "dispatch", "dispatched")
        )

    @router.post("/bookings/{reference}/cancel")
    async def cancel(reference: str, key: IdempotencyKey) -> Json:
        """Cancel the booking; 409 once dispatched or cancelled."""
        request = {"kind": "cancel", "reference": reference}
        return await simulator.perform(
            key, request, lambda ledger, _: ledger.move(reference, "cancel", "cancelled")
        )

    return create_simulator_app("strata carrier simulator", simulator, router)


main = simulator_main(
    "strata-carrier",
    "carrier",
    create_app,
    lambda settings: settings.carrier_port,
    lambda settings: settings.carrier_ledger,
)
