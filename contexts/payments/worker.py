"""The payments worker: for each due `payment-provider` job, the provider call it stands for,
then its outcome committed with the job's removal.

It is the `handle` of the job poller of its kind; a `ProviderUnavailable` (timeout, 5xx, outage,
open breaker) propagates, and the poller tries again later with the same idempotency key.
"""

from contexts.participant import ParticipantWorker
from contexts.payments.domain import Payment
from contexts.payments.ports import PaymentProvider, ProviderUnavailable
from contexts.payments.service import PAYMENT_PROVIDER_JOBS, PaymentsService


class PaymentsWorker(ParticipantWorker[Payment]):
    unavailable = ProviderUnavailable

    def __init__(self, payments: PaymentsService, provider: PaymentProvider) -> None:
        operations = {
            "authorize": self._authorize,
            "capture": self._capture,
            "void": self._void,
            "refund": self._refund,
        }
        super().__init__(PAYMENT_PROVIDER_JOBS, payments.payment, operations)
        self._payments = payments
        self._provider = provider

    def _authorize(self, key: str, payment: Payment) -> bool:
        authorization = self._provider.authorize(key, payment.amount, payment.currency)
        return self._payments.complete_authorization(payment.id, authorization)

    def _capture(self, key: str, payment: Payment) -> bool:
        self._provider.capture(key, payment.provider_reference(), payment.amount, payment.currency)
        return self._payments.complete_capture(payment.id)

    def _void(self, key: str, payment: Payment) -> bool:
        self._provider.void(key, payment.provider_reference())
        return self._payments.complete_void(payment.id)

    def _refund(self, key: str, payment: Payment) -> bool:
        self._provider.refund(key, payment.provider_reference(), payment.amount, payment.currency)
        return self._payments.complete_refund(payment.id)
