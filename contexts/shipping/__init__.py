"""The shipping context (issue 9): shipments of orders, through carriers; commands at /shipments.

Its commands only record intent; the shipping worker calls the carrier for each due job
(`contexts.shipping.worker`), through the port in `contexts.shipping.ports`.
"""

from contexts.participant import provider_worker
from contexts.registry import BoundedContext, Worker
from contexts.shipping.carrier import HttpCarrier
from contexts.shipping.domain import Shipment
from contexts.shipping.endpoints import router
from contexts.shipping.service import CARRIER_JOBS, ShippingService
from contexts.shipping.worker import ShippingWorker
from projections.models.shipments_board import ShipmentsBoard
from read_api import shipment_endpoints

SHIPPING = BoundedContext(
    name="shipping",
    application=ShippingService,
    aggregates=(Shipment,),
    router=router,
    workers=(Worker(CARRIER_JOBS, provider_worker(ShippingService, HttpCarrier, ShippingWorker)),),
    projections=(ShipmentsBoard,),
    read_router=shipment_endpoints.router,
)
