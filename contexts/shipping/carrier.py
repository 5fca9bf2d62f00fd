"""The carrier over HTTP: the shipping context's `Carrier`, on the API of `strata-carrier`
(simulators/carrier.py).

Each call goes through the carrier's circuit breaker and retry policy (`runtime.resilience`)
with its idempotency key. A timeout, a refused connection, a 5xx or an open breaker raise
`CarrierUnavailable` (its `__cause__` tells which); a refusal is an answer, not an error; a
request the carrier refuses (4xx) raises `DownstreamProtocolError`: a bug, not an outage.
"""

from typing import Literal
from urllib.parse import quote
from uuid import UUID

from pydantic import BaseModel

from contexts.shipping.ports import Booking, CarrierUnavailable
from runtime.resilience import Acknowledged, DownstreamClient
from runtime.settings import CommonSettings


class _BookingAnswer(BaseModel):
    state: Literal["accepted", "refused"]
    carrier: str | None = None
    reference: str | None = None
    reason: str | None = None


class HttpCarrier(DownstreamClient):
    downstream = "carrier"
    unavailable = CarrierUnavailable

    @classmethod
    def base_url(cls, settings: CommonSettings) -> str:
        return settings.carrier_url

    def schedule(self, key: str, shipment_id: UUID, order_id: UUID) -> Booking:
        body = {"shipment_id": str(shipment_id), "order_id": str(order_id)}
        answer = self._downstream.post("/bookings", key, body, _BookingAnswer)
        if answer.state == "accepted":
            return Booking(accepted=True, carrier=answer.carrier, reference=answer.reference)
        return Booking(accepted=False, reason=answer.reason)

    def dispatch(self, key: str, reference: str) -> None:
        self._operate(reference, "dispatch", key)

    def cancel(self, key: str, reference: str) -> None:
        self._operate(reference, "cancel", key)

    def _operate(self, reference: str, operation: str, key: str) -> None:
        path = f"/bookings/{quote(reference, safe='')}/{operation}"
        self._downstream.post(path, key, {}, Acknowledged)
