"""The payments context (issue 9): payments of orders, through a payment provider.

Its commands only record intent; the payments worker calls the provider for each due job
(`contexts.payments.worker`), through the port in `contexts.payments.ports`.
"""

from contexts.payments.domain import Payment
from contexts.payments.endpoints import router
from contexts.payments.service import PaymentsService
from contexts.registry import BoundedContext

PAYMENTS = BoundedContext(
    name="payments", application=PaymentsService, aggregates=(Payment,), router=router
)
