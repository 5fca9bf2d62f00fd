"""The payments context (issue 9): payments of orders, through a payment provider.

Its commands only record intent; the payments worker calls the provider for each due job
(`contexts.payments.worker`), through the port in `contexts.payments.ports`.
"""

from contexts.participant import provider_worker
from contexts.payments.domain import Payment
from contexts.payments.endpoints import router
from contexts.payments.provider import HttpPaymentProvider
from contexts.payments.service import PAYMENT_PROVIDER_JOBS, PaymentsService
from contexts.payments.worker import PaymentsWorker
from contexts.registry import BoundedContext, Worker
from projections.models.payments_ledger import PaymentsLedger
from read_api import payment_endpoints

PAYMENTS = BoundedContext(
    name="payments",
    application=PaymentsService,
    aggregates=(Payment,),
    router=router,
    workers=(
        Worker(
            PAYMENT_PROVIDER_JOBS,
            provider_worker(PaymentsService, HttpPaymentProvider, PaymentsWorker),
        ),
    ),
    projections=(PaymentsLedger,),
    read_router=payment_endpoints.router,
)
