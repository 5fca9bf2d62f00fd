"""The shipping context (issue 9): shipments of orders, through carriers; commands at /shipments.

Its commands only record intent; the shipping worker calls the carrier for each due job
(`contexts.shipping.worker`), through the port in `contexts.shipping.ports`.
"""

from contexts.registry import BoundedContext, JobHandler, Worker, WorkerEnvironment
from contexts.shipping.carrier import HttpCarrier
from contexts.shipping.domain import Shipment
from contexts.shipping.endpoints import router
from contexts.shipping.service import CARRIER_JOBS, ShippingService
from contexts.shipping.worker import ShippingWorker
from domain.service import CommandService
from projections.models.shipments_board import ShipmentsBoard
from read_api import shipment_endpoints
from runtime.resilience import http_client


def call_the_carrier(shipping: CommandService, environment: WorkerEnvironment) -> JobHandler:
    assert isinstance(shipping, ShippingService)
    settings = environment.settings
    client = http_client(settings.provider_timeout_seconds)
    carrier = HttpCarrier.from_settings(settings, client, environment.breakers)
    return ShippingWorker(shipping, carrier).handle


SHIPPING = BoundedContext(
    name="shipping",
    application=ShippingService,
    aggregates=(Shipment,),
    router=router,
    workers=(Worker(CARRIER_JOBS, call_the_carrier),),
    projections=(ShipmentsBoard,),
    read_router=shipment_endpoints.router,
)
