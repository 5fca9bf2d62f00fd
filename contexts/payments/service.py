"""The payments application: participant commands (each records an intent and answers at once)
and the outcome handlers the worker calls with the provider's answers."""

from collections.abc import Callable
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from contexts.participant import OperationJobs, ParticipantService
from contexts.payments.domain import MAX_REASON_LENGTH, Payment
from contexts.payments.ports import Authorization
from domain.errors import ValueTaken
from domain.ports import Claim
from domain.service import ClaimChanges, CommandContext, CommandResult, Decision
from domain.values import legible_text

LIVE_PAYMENT = "live-payment"
PAYMENT_PROVIDER_JOBS = "payment-provider"
DECLINED = "declined by the provider"
"""The reason of a decline whose own reason shows nothing."""


def live_payment_claim(payment: Payment) -> Claim:
    """At most one live payment per order: taken when requested, given up when it ends."""
    return Claim(LIVE_PAYMENT, str(payment.order_id), payment.id)


def released_if_ended(payment: Payment) -> ClaimChanges:
    return (
        ClaimChanges() if payment.is_live else ClaimChanges(release=[live_payment_claim(payment)])
    )


def ending(outcome: Callable[[Payment], None]) -> Callable[[Payment], ClaimChanges]:
    """Record an outcome that may end the payment, giving up its claim if it does."""

    def record(payment: Payment) -> ClaimChanges:
        outcome(payment)
        return released_if_ended(payment)

    return record


class PaymentsService(ParticipantService):
    name: ClassVar[str] = "payments"  # type: ignore[misc]
    operation_jobs = OperationJobs(
        PAYMENT_PROVIDER_JOBS,
        starts={
            Payment.Requested: "authorize",
            Payment.CaptureRequested: "capture",
            Payment.VoidRequested: "void",
            Payment.RefundRequested: "refund",
        },
        finishes={
            Payment.Authorized: "authorize",
            Payment.Declined: "authorize",
            Payment.Captured: "capture",
            Payment.Voided: "void",
            Payment.Refunded: "refund",
        },
    )

    def request_authorization(
        self,
        ctx: CommandContext,
        payment_id: UUID,
        order_id: UUID,
        user_id: UUID,
        amount: Decimal,
        currency: str,
    ) -> CommandResult:
        """Create the payment at the caller's id (the saga derives it from the order); asked
        again, answer its current state."""

        def new() -> Decision:
            payment = Payment.request(payment_id, order_id, user_id, amount, currency)
            claim = live_payment_claim(payment)
            owner = self.side_records.claim_owner(claim.scope, claim.value)
            if owner is not None:
                raise ValueTaken(
                    f"order {order_id} has a live payment already, {owner}: void or refund it"
                    " (or let it be declined) before another"
                )
            return Decision(payment, ClaimChanges(take=[claim]))

        def same_request(payment: Payment) -> None:
            payment.require_same_request(order_id, user_id, amount, currency)

        return self.create_at(ctx, Payment, payment_id, new, same_request)

    def request_capture(self, ctx: CommandContext, payment_id: UUID) -> CommandResult:
        return self.update(ctx, Payment, payment_id, lambda p: p.request_capture())

    def request_void(self, ctx: CommandContext, payment_id: UUID) -> CommandResult:
        return self.update(ctx, Payment, payment_id, lambda p: p.request_void())

    def request_refund(self, ctx: CommandContext, payment_id: UUID) -> CommandResult:
        return self.update(ctx, Payment, payment_id, lambda p: p.request_refund())

    def payment(self, payment_id: UUID) -> Payment:
        return self.load(Payment, payment_id)

    # Outcomes: each returns False, writing nothing, if the payment no longer awaits it

    def complete_authorization(self, payment_id: UUID, authorization: Authorization) -> bool:
        def outcome(payment: Payment) -> None:
            if authorization.approved:
                payment.record_authorization(authorization.reference or "")
            else:
                reason = authorization.reason or ""  # the provider's words: made legible
                payment.record_decline(
                    legible_text(reason, max_length=MAX_REASON_LENGTH, fallback=DECLINED)
                )

        return self.complete(Payment, payment_id, "authorize", ending(outcome))

    def complete_capture(self, payment_id: UUID) -> bool:
        return self.complete(Payment, payment_id, "capture", lambda p: p.record_capture())

    def complete_void(self, payment_id: UUID) -> bool:
        return self.complete(Payment, payment_id, "void", ending(Payment.record_void))

    def complete_refund(self, payment_id: UUID) -> bool:
        return self.complete(Payment, payment_id, "refund", ending(Payment.record_refund))
