"""The shipping worker: for each due `carrier` job, the carrier call it stands for, then its
outcome committed with the job's removal.

It is the `handle` of the job poller of its kind; a `CarrierUnavailable` (timeout, 5xx, outage,
open breaker) propagates, and the poller tries again later with the same idempotency key.
"""

from contexts.participant import ParticipantWorker
from contexts.shipping.domain import Shipment
from contexts.shipping.ports import Carrier, CarrierUnavailable
from contexts.shipping.service import CARRIER_JOBS, ShippingService


class ShippingWorker(ParticipantWorker[Shipment]):
    unavailable = CarrierUnavailable

    def __init__(self, shipping: ShippingService, carrier: Carrier) -> None:
        operations = {
            "schedule": self._schedule,
            "dispatch": self._dispatch,
            "cancel": self._cancel,
        }
        super().__init__(CARRIER_JOBS, shipping.shipment, operations)
        self._shipping = shipping
        self._carrier = carrier

    def _schedule(self, key: str, shipment: Shipment) -> bool:
        booking = self._carrier.schedule(key, shipment.id, shipment.order_id)
        return self._shipping.complete_scheduling(shipment.id, booking)

    def _dispatch(self, key: str, shipment: Shipment) -> bool:
        self._carrier.dispatch(key, shipment.provider_reference())
        return self._shipping.complete_dispatch(shipment.id)

    def _cancel(self, key: str, shipment: Shipment) -> bool:
        self._carrier.cancel(key, shipment.provider_reference())
        return self._shipping.complete_cancellation(shipment.id)
