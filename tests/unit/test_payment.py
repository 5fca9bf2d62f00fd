"""Unit tests for the Payment aggregate: its state machine, its money, the jobs its events start
and finish, and its snapshot."""

from collections.abc import Callable
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from contexts.payments.domain import ENDED, Payment, PaymentStatus
from contexts.payments.service import PAYMENT_PROVIDER_JOBS, PaymentsService
from domain.errors import DomainError, InvalidValue
from tests.support.aggregates import collected
from tests.support.participants import (
    assert_restored_from_snapshot,
    brought_to,
    check_transition,
    open_jobs,
)
from tests.unit.test_as_of_snapshots import IN_MEMORY

S = PaymentStatus
Command = Callable[[Payment], None]


def new_payment(amount: str = "12.30", currency: str = "EUR") -> Payment:
    return Payment.request(uuid4(), uuid4(), uuid4(), Decimal(amount), currency)


def approve(payment: Payment) -> None:
    payment.record_authorization("auth-1")


def decline(payment: Payment) -> None:
    payment.record_decline("insufficient funds")


STEPS: dict[PaymentStatus, list[Command]] = {
    S.REQUESTED: [],
    S.AUTHORIZED: [approve],
    S.DECLINED: [decline],
    S.CAPTURING: [approve, Payment.request_capture],
    S.VOIDING: [approve, Payment.request_void],
}
STEPS[S.CAPTURED] = [*STEPS[S.CAPTURING], Payment.record_capture]
STEPS[S.VOIDED] = [*STEPS[S.VOIDING], Payment.record_void]
STEPS[S.REFUNDING] = [*STEPS[S.CAPTURED], Payment.request_refund]
STEPS[S.REFUNDED] = [*STEPS[S.REFUNDING], Payment.record_refund]


def payment_in(status: PaymentStatus) -> Payment:
    """A fresh payment brought to `status` through its public commands, events collected."""
    payment = brought_to(new_payment(), STEPS[status])
    assert payment.status is status
    payment.collect_events()
    return payment


def test_a_request_records_the_order_the_user_and_exact_money_at_the_given_id() -> None:
    payment_id, order_id, user_id = uuid4(), uuid4(), uuid4()
    payment = Payment.request(payment_id, order_id, user_id, Decimal("12.3"), " eur ")

    assert (payment.id, payment.order_id, payment.user_id) == (payment_id, order_id, user_id)
    assert (payment.amount, payment.currency) == (Decimal("12.30"), "EUR")
    assert str(payment.amount) == "12.30"
    assert (payment.status, payment.pending_operation) == (S.REQUESTED, "authorize")
    [requested] = payment.collect_events()
    assert isinstance(requested, Payment.Requested)
    assert (requested.amount, requested.currency) == (Decimal("12.30"), "EUR")


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        ("-0.01", "EUR", "amount must be a non-negative amount"),
        ("1.001", "EUR", "amount may have at most 2 decimal places"),
        ("NaN", "EUR", "amount must be a non-negative amount"),
        ("1000000000000.00", "EUR", "amount must be at most 999999999999.99"),
        ("1.00", "EURO", "currency 'EURO' is not an ISO 4217 code"),
        ("1.00", "XYZ", "currency 'XYZ' is not an ISO 4217 code"),
        ("1.00", "XTS", "currency XTS is not a currency of payment"),
        ("1.00", "XAU", "currency XAU is not a currency of payment"),
        ("1.00", "CHW", "currency CHW is not a currency of payment"),
        ("10.50", "JPY", "amount 10.50: JPY has no minor unit: a price in JPY is a whole number"),
        ("10.5", "KRW", "KRW has no minor unit"),
    ],
)
def test_a_request_refuses_bad_money(amount: str, currency: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        new_payment(amount, currency)


# Transitions

TRANSITIONS: dict[str, tuple[Command, PaymentStatus, PaymentStatus, set[PaymentStatus]]] = {
    # name: (command, the status it needs, the status it leads to, where it is a no-op)
    "record_authorization": (approve, S.REQUESTED, S.AUTHORIZED, set()),
    "record_decline": (decline, S.REQUESTED, S.DECLINED, set()),
    "request_capture": (
        Payment.request_capture,
        S.AUTHORIZED,
        S.CAPTURING,
        {S.CAPTURING, S.CAPTURED},
    ),
    "record_capture": (Payment.record_capture, S.CAPTURING, S.CAPTURED, set()),
    "request_void": (Payment.request_void, S.AUTHORIZED, S.VOIDING, {S.VOIDING, S.VOIDED}),
    "record_void": (Payment.record_void, S.VOIDING, S.VOIDED, set()),
    "request_refund": (Payment.request_refund, S.CAPTURED, S.REFUNDING, {S.REFUNDING, S.REFUNDED}),
    "record_refund": (Payment.record_refund, S.REFUNDING, S.REFUNDED, set()),
}
CASES = [(name, status) for name in TRANSITIONS for status in PaymentStatus]


@pytest.mark.parametrize(("name", "status"), CASES, ids=[f"{n}-in-{s}" for n, s in CASES])
def test_each_command_moves_one_status_is_a_no_op_once_done_and_refused_elsewhere(
    name: str, status: PaymentStatus
) -> None:
    command, source, target, done = TRANSITIONS[name]
    check_transition(payment_in(status), command, source, target, done)


def test_the_refusals_between_void_and_refund_say_which_one_applies() -> None:
    with pytest.raises(DomainError, match=r"; a captured payment is refunded instead$"):
        payment_in(S.CAPTURED).request_void()
    with pytest.raises(DomainError, match=r"; an uncaptured payment is voided instead$"):
        payment_in(S.AUTHORIZED).request_refund()


@pytest.mark.parametrize(
    ("status", "operation"),
    [
        (S.REQUESTED, "authorize"),
        (S.CAPTURING, "capture"),
        (S.VOIDING, "void"),
        (S.REFUNDING, "refund"),
        (S.AUTHORIZED, None),
        (S.CAPTURED, None),
        (S.DECLINED, None),
    ],
)
def test_the_pending_operation_is_the_one_the_provider_is_asked_for(
    status: PaymentStatus, operation: str | None
) -> None:
    assert payment_in(status).pending_operation == operation


@pytest.mark.parametrize("status", list(PaymentStatus))
def test_money_is_held_only_between_capture_and_refund_and_liveness_ends_with_the_payment(
    status: PaymentStatus,
) -> None:
    payment = payment_in(status)
    held = status in (S.CAPTURED, S.REFUNDING)
    assert payment.charged == (Decimal("12.30") if held else Decimal("0.00"))
    assert payment.is_live is (status not in ENDED)


def test_a_repeated_request_must_be_the_same_request() -> None:
    payment = payment_in(S.AUTHORIZED)
    payment.require_same_request(payment.order_id, payment.user_id, Decimal("12.3"), "eur")
    with pytest.raises(DomainError, match="a payment's request cannot change"):
        payment.require_same_request(payment.order_id, payment.user_id, Decimal("12.31"), "EUR")
    with pytest.raises(DomainError, match=f"was requested for order {payment.order_id}"):
        payment.require_same_request(uuid4(), payment.user_id, Decimal("12.30"), "EUR")


@pytest.mark.parametrize("reference", ["", "   ", "r" * 201])
def test_an_authorization_needs_a_reference_of_1_to_200_characters(reference: str) -> None:
    payment = payment_in(S.REQUESTED)
    with pytest.raises(InvalidValue, match=r"^reference must be 1 to 200 characters"):
        payment.record_authorization(reference)
    assert payment.status is S.REQUESTED


# Jobs: a pure function of the new events


def key(payment: Payment, operation: str) -> tuple[str, str]:
    return (PAYMENT_PROVIDER_JOBS, f"{payment.id}:{operation}")


def test_an_intent_starts_a_job_due_at_its_event_and_its_outcome_finishes_it() -> None:
    jobs = PaymentsService.operation_jobs
    payment = new_payment()
    [requested] = collected(payment)

    started = jobs.changes([requested])
    assert [(j.kind, j.key) for j in started.start] == [key(payment, "authorize")]
    assert started.start[0].due_at == requested.timestamp
    assert started.finish == []

    payment.record_authorization("auth-1")
    payment.request_capture()
    authorized, capture_requested = collected(payment)
    assert jobs.changes([authorized]).finish == [key(payment, "authorize")]
    assert [(j.kind, j.key) for j in jobs.changes([capture_requested]).start] == [
        key(payment, "capture")
    ]


@pytest.mark.parametrize("status", list(PaymentStatus))
def test_the_open_jobs_of_a_payment_are_exactly_its_pending_operation(
    status: PaymentStatus,
) -> None:
    payment = brought_to(new_payment(), STEPS[status])
    operation = payment.pending_operation
    assert open_job_keys(collected(payment)) == ({key(payment, operation)} if operation else set())


def open_job_keys(events: list[Payment.Event]) -> set[tuple[str, str]]:
    return set(open_jobs(PaymentsService.operation_jobs.changes, events))


# Snapshots


@pytest.mark.parametrize("status", [S.REQUESTED, S.DECLINED, S.REFUNDED])
def test_a_payment_comes_back_from_its_snapshot_exactly(status: PaymentStatus) -> None:
    assert_restored_from_snapshot(PaymentsService(env=IN_MEMORY), payment_in(status))


# Property: whatever the order of commands and outcomes, money moves at most once each way


class PaymentLifecycle(RuleBasedStateMachine):
    """Drives one payment with random intents and provider outcomes, in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.payment = new_payment("10.00")
        self.events = collected(self.payment)

    def attempt(self, command: Command) -> None:
        before = (self.payment.status, self.payment.version)
        try:
            command(self.payment)
        except DomainError:
            assert (self.payment.status, self.payment.version) == before
        self.events += collected(self.payment)

    @rule(approved=st.booleans())
    def provider_answers_the_authorization(self, approved: bool) -> None:
        self.attempt(approve if approved else decline)

    @rule(intent=st.sampled_from(["request_capture", "request_void", "request_refund"]))
    def someone_asks(self, intent: str) -> None:
        self.attempt(getattr(Payment, intent))

    @rule(outcome=st.sampled_from(["record_capture", "record_void", "record_refund"]))
    def provider_reports(self, outcome: str) -> None:
        self.attempt(getattr(Payment, outcome))

    @precondition(lambda self: self.payment.pending_operation is not None)
    @rule()
    def the_worker_completes_the_pending_operation(self) -> None:
        outcome = {
            "authorize": approve,
            "capture": Payment.record_capture,
            "void": Payment.record_void,
            "refund": Payment.record_refund,
        }
        self.attempt(outcome[str(self.payment.pending_operation)])

    def count(self, event_class: type[Payment.Event]) -> int:
        return sum(isinstance(event, event_class) for event in self.events)

    @invariant()
    def money_is_captured_at_most_once_and_refunded_only_after_a_capture(self) -> None:
        types = [type(event) for event in self.events]
        assert self.count(Payment.Captured) <= 1
        assert self.count(Payment.Refunded) <= self.count(Payment.Captured)
        if Payment.Refunded in types:
            assert types.index(Payment.Captured) < types.index(Payment.Refunded)
        if Payment.Voided in types:
            assert Payment.Captured not in types

    @invariant()
    def the_charge_is_what_was_captured_less_what_was_refunded(self) -> None:
        net = self.count(Payment.Captured) - self.count(Payment.Refunded)
        assert self.payment.charged == net * Decimal("10.00")

    @invariant()
    def the_open_jobs_are_the_pending_operation(self) -> None:
        operation = self.payment.pending_operation
        assert open_job_keys(self.events) == (
            {key(self.payment, operation)} if operation else set()
        )


TestPaymentLifecycle = PaymentLifecycle.TestCase
TestPaymentLifecycle.settings = settings(max_examples=200, stateful_step_count=25, deadline=None)


def test_ids_are_kept_as_given() -> None:
    """The saga derives a payment's id from its order: the aggregate must not make its own."""
    given = UUID("8c3b7f0e-2f44-5d1c-9a52-0d1f6a1b2c3d")
    assert Payment.request(given, uuid4(), uuid4(), Decimal("1"), "EUR").id == given
