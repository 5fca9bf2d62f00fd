"""What the payments context needs from a payment provider, as the domain sees it.

Every call carries an idempotency key: the provider performs each operation once per key and
answers a repeated key with the first answer, so a retry after a timeout never charges twice.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


class ProviderUnavailable(Exception):
    """The provider could not be reached or failed (timeout, 5xx, outage, open breaker): the
    outcome is unknown, so the call is retried later with the same key."""


@dataclass(frozen=True)
class Authorization:
    approved: bool
    reference: str | None = None
    """The provider's reference of an approved authorization (capture, void and refund name it)."""
    reason: str | None = None
    """Why a declined authorization was declined."""


class PaymentProvider(Protocol):
    def authorize(self, key: str, amount: Decimal, currency: str) -> Authorization: ...

    def capture(self, key: str, reference: str, amount: Decimal, currency: str) -> None: ...

    def void(self, key: str, reference: str) -> None: ...

    def refund(self, key: str, reference: str, amount: Decimal, currency: str) -> None: ...
