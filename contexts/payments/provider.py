"""The payment provider over HTTP: the payments context's `PaymentProvider`, on the API of
`strata-payment-provider` (simulators/payment_provider.py).

Each call goes through the provider's circuit breaker and retry policy (`runtime.resilience`)
with its idempotency key. A timeout, a refused connection, a 5xx or an open breaker raise
`ProviderUnavailable` (its `__cause__` tells which); a decline is an answer, not an error; a
request the provider refuses (4xx) raises `DownstreamProtocolError`: a bug, not an outage.
"""

from decimal import Decimal
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel

from contexts.payments.ports import Authorization, ProviderUnavailable
from runtime.resilience import Acknowledged, DownstreamClient
from runtime.settings import CommonSettings


class _AuthorizationAnswer(BaseModel):
    state: Literal["approved", "declined"]
    reference: str | None = None
    reason: str | None = None


class HttpPaymentProvider(DownstreamClient):
    downstream = "payment-provider"
    unavailable = ProviderUnavailable

    @classmethod
    def base_url(cls, settings: CommonSettings) -> str:
        return settings.payment_provider_url

    def authorize(self, key: str, amount: Decimal, currency: str) -> Authorization:
        body = _money(amount, currency)
        answer = self._downstream.post("/authorizations", key, body, _AuthorizationAnswer)
        if answer.state == "approved":
            return Authorization(approved=True, reference=answer.reference)
        return Authorization(approved=False, reason=answer.reason)

    def capture(self, key: str, reference: str, amount: Decimal, currency: str) -> None:
        self._operate(reference, "capture", key, _money(amount, currency))

    def void(self, key: str, reference: str) -> None:
        self._operate(reference, "void", key, {})

    def refund(self, key: str, reference: str, amount: Decimal, currency: str) -> None:
        self._operate(reference, "refund", key, _money(amount, currency))

    def _operate(self, reference: str, operation: str, key: str, body: dict[str, str]) -> None:
        path = f"/authorizations/{quote(reference, safe='')}/{operation}"
        self._downstream.post(path, key, body, Acknowledged)


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": str(amount), "currency": currency}
