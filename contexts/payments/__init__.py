"""The payments context (issue 9): payments of orders, through a payment provider.

Its commands only record intent; the payments worker calls the provider for each due job
(`contexts.payments.worker`), through the port in `contexts.payments.ports`.
"""

from contexts.payments.domain import Payment
from contexts.payments.endpoints import router
from contexts.payments.provider import HttpPaymentProvider
from contexts.payments.service import PAYMENT_PROVIDER_JOBS, PaymentsService
from contexts.payments.worker import PaymentsWorker
from contexts.registry import BoundedContext, JobHandler, Worker, WorkerEnvironment
from domain.service import CommandService
from projections.models.payments_ledger import PaymentsLedger
from read_api import payment_endpoints
from runtime.resilience import http_client


def call_the_provider(payments: CommandService, environment: WorkerEnvironment) -> JobHandler:
    assert isinstance(payments, PaymentsService)
    settings = environment.settings
    client = http_client(settings.provider_timeout_seconds)
    provider = HttpPaymentProvider.from_settings(settings, client, environment.breakers)
    return PaymentsWorker(payments, provider).handle


PAYMENTS = BoundedContext(
    name="payments",
    application=PaymentsService,
    aggregates=(Payment,),
    router=router,
    workers=(Worker(PAYMENT_PROVIDER_JOBS, call_the_provider),),
    projections=(PaymentsLedger,),
    read_router=payment_endpoints.router,
)
