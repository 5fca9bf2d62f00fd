"""The Payment aggregate: the money of one order, through a payment provider.

    requested -> authorized -> capturing -> captured -> refunding -> refunded
        |             \\-> voiding -> voided
        \\-> declined

Each `...ing` status awaits the provider's outcome of one operation. Money is captured at most
once and refunded only after that; a payment is live (at most one per order) until it is
declined, voided or refunded.
"""

from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from contexts.participant import AwaitingProvider
from domain.currencies import payment_currency, price_in
from domain.errors import DomainError
from domain.values import bounded_text, currency_code, money_amount

MAX_REFERENCE_LENGTH = 200
MAX_REASON_LENGTH = 500


class PaymentStatus(StrEnum):
    REQUESTED = "requested"
    AUTHORIZED = "authorized"
    DECLINED = "declined"
    CAPTURING = "capturing"
    CAPTURED = "captured"
    VOIDING = "voiding"
    VOIDED = "voided"
    REFUNDING = "refunding"
    REFUNDED = "refunded"


ENDED = frozenset({PaymentStatus.DECLINED, PaymentStatus.VOIDED, PaymentStatus.REFUNDED})
"""A payment in one of these is no longer live: its order may have another."""


class Payment(AwaitingProvider):
    """The payment of one order by one user, in one currency."""

    AWAITS: ClassVar[dict[str, str]] = {
        PaymentStatus.REQUESTED: "authorize",
        PaymentStatus.CAPTURING: "capture",
        PaymentStatus.VOIDING: "void",
        PaymentStatus.REFUNDING: "refund",
    }

    class Requested(Aggregate.Created):
        class_version = 1
        order_id: UUID
        user_id: UUID
        amount: Decimal
        currency: str

    class Authorized(Aggregate.Event):
        class_version = 1
        reference: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = PaymentStatus.AUTHORIZED
            aggregate.reference = self.reference

    class Declined(Aggregate.Event):
        class_version = 1
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = PaymentStatus.DECLINED
            aggregate.decline_reason = self.reason

    class CaptureRequested(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = PaymentStatus.CAPTURING

    class Captured(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = PaymentStatus.CAPTURED

    class VoidRequested(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = PaymentStatus.VOIDING

    class Voided(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = PaymentStatus.VOIDED

    class RefundRequested(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = PaymentStatus.REFUNDING

    class Refunded(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = PaymentStatus.REFUNDED

    def __init__(self, order_id: UUID, user_id: UUID, amount: Decimal, currency: str) -> None:
        self.order_id = order_id
        self.user_id = user_id
        self.amount = amount
        self.currency = currency
        self.status = PaymentStatus.REQUESTED
        self.reference: str | None = None
        """The provider's reference of the authorization (capture, void and refund name it)."""
        self.decline_reason: str | None = None

    @classmethod
    def request(
        cls, payment_id: UUID, order_id: UUID, user_id: UUID, amount: Decimal, currency: str
    ) -> "Payment":
        currency = payment_currency(currency)
        return cls._create(
            cls.Requested,
            id=payment_id,
            order_id=order_id,
            user_id=user_id,
            amount=price_in(amount, currency, field="amount"),
            currency=currency,
        )

    def restore_types(self) -> None:
        self.status = PaymentStatus(self.status)  # a StrEnum is stored as its plain string

    @property
    def is_live(self) -> bool:
        return self.status not in ENDED

    @property
    def charged(self) -> Decimal:
        """What the provider holds of the user's money now (0 unless captured, not refunded)."""
        held = (PaymentStatus.CAPTURED, PaymentStatus.REFUNDING)
        return self.amount if self.status in held else Decimal("0.00")

    def require_same_request(
        self, order_id: UUID, user_id: UUID, amount: Decimal, currency: str
    ) -> None:
        """A request again at this payment's id must be the one it was created by."""
        asked = (order_id, user_id, money_amount(amount, field="amount"), currency_code(currency))
        if asked != (self.order_id, self.user_id, self.amount, self.currency):
            raise DomainError(
                f"payment {self.id} was requested for order {self.order_id} by user"
                f" {self.user_id}, {self.amount} {self.currency}; a payment's request cannot"
                " change"
            )

    # The provider's outcomes

    def record_authorization(self, reference: str) -> None:
        self._require(PaymentStatus.REQUESTED, action="record an authorization")
        reference = bounded_text(reference, field="reference", max_length=MAX_REFERENCE_LENGTH)
        self.trigger_event(self.Authorized, reference=reference)

    def record_decline(self, reason: str) -> None:
        self._require(PaymentStatus.REQUESTED, action="record a decline")
        reason = bounded_text(reason, field="reason", max_length=MAX_REASON_LENGTH)
        self.trigger_event(self.Declined, reason=reason)

    def record_capture(self) -> None:
        self._require(PaymentStatus.CAPTURING, action="record a capture")
        self.trigger_event(self.Captured)

    def record_void(self) -> None:
        self._require(PaymentStatus.VOIDING, action="record a void")
        self.trigger_event(self.Voided)

    def record_refund(self) -> None:
        self._require(PaymentStatus.REFUNDING, action="record a refund")
        self.trigger_event(self.Refunded)

    # Intents: each is carried out by the provider later

    def request_capture(self) -> None:
        self._request(
            self.CaptureRequested,
            action="capture",
            source=PaymentStatus.AUTHORIZED,
            done=(PaymentStatus.CAPTURING, PaymentStatus.CAPTURED),
        )

    def request_void(self) -> None:
        captured = (PaymentStatus.CAPTURED, PaymentStatus.REFUNDING, PaymentStatus.REFUNDED)
        self._request(
            self.VoidRequested,
            action="void",
            source=PaymentStatus.AUTHORIZED,
            done=(PaymentStatus.VOIDING, PaymentStatus.VOIDED),
            hint="; a captured payment is refunded instead" if self.status in captured else "",
        )

    def request_refund(self) -> None:
        self._request(
            self.RefundRequested,
            action="refund",
            source=PaymentStatus.CAPTURED,
            done=(PaymentStatus.REFUNDING, PaymentStatus.REFUNDED),
            hint="; an uncaptured payment is voided instead"
            if self.status is PaymentStatus.AUTHORIZED
            else "",
        )
