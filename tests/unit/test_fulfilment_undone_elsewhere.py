"""Unit tests of the OrderFulfilment saga told that its payment was voided or refunded, or its
shipment cancelled, when it was not waiting for that (an operator did it, or a command of its
own it had stopped waiting for): it remembers, and never asks for it later; a saga still running
cannot go on, and compensates the rest at once. Payments and shipping
answer such a request with nothing new (an intent pending or done is a no-op), so a saga that
asked would wait for a confirmation that never comes and park at the step's deadline."""

import pytest

from contexts.fulfilment.definition import FulfilmentStatus, StepState
from tests.unit.test_fulfilment import Run

CONFIRMATIONS = {
    "cancel_shipment": "shipment_cancelled",
    "void_payment": "payment_voided",
    "refund_payment": "payment_refunded",
}
UNDONE_STATES = {
    "void_payment": ("payment", "voided"),
    "refund_payment": ("payment", "refunded"),
    "cancel_shipment": ("shipment", "cancelled"),
}


@pytest.mark.parametrize(
    ("step", "undone", "plan"),
    [
        ("schedule", "void_payment", ["cancel_shipment", "cancel_order"]),
        ("capture", "cancel_shipment", ["void_payment", "cancel_order"]),
        ("capture", "void_payment", ["cancel_shipment", "cancel_order"]),
        ("dispatch", "refund_payment", ["cancel_shipment", "cancel_order"]),
        ("dispatch", "cancel_shipment", ["refund_payment", "cancel_order"]),
    ],
)
def test_what_was_undone_while_the_saga_ran_ends_it_and_is_not_asked_for(
    step: str, undone: str, plan: list[str]
) -> None:
    """It cannot go on (a shipment dispatched for a refunded payment): it stops waiting for its
    step and compensates the rest at once, without waiting for the step's deadline."""
    run = Run().run_to(step)
    events = run.feed(CONFIRMATIONS[undone])
    names = ["UndoneElsewhere", "StepAbandoned", "CompensationStarted"]
    assert run.event_names(events)[:3] == names
    participant, state = UNDONE_STATES[undone]
    reason = f"the {participant} was {state} outside the saga"
    assert (run.saga.status, run.saga.reason) == (FulfilmentStatus.COMPENSATING, reason)
    assert run.states()[step] == StepState.FAILED
    assert [run.saga.step, *run.saga.plan] == plan
    assert step not in {deadline.step for deadline in run.armed.values()}
    for compensation in plan[:-1]:
        run.feed(CONFIRMATIONS[compensation])
    run.feed("order_cancelled", run.saga.reason)
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert undone not in run.issued
    assert run.armed == {}


def test_a_refund_by_an_operator_before_dispatch_ships_nothing() -> None:
    """Before, the saga went on: the shipment was dispatched and the order marked shipped, for a
    payment refunded in full."""
    run = Run().run_to("dispatch")
    run.feed("payment_refunded")
    run.feed("shipment_dispatched")
    assert "mark_shipped" not in run.issued
    assert run.saga.status is FulfilmentStatus.COMPENSATING
    assert run.saga.step == "cancel_shipment"


@pytest.mark.parametrize("status", ["compensating", "parked"])
def test_what_was_undone_during_compensation_is_dropped_from_its_plan(status: str) -> None:
    run = Run().run_to("dispatch")
    run.fire("dispatch")
    assert (run.saga.step, run.saga.plan) == ("cancel_shipment", ["refund_payment", "cancel_order"])
    if status == "parked":
        run.feed("command_refused", "cancel_shipment", 0, "the shipment is dispatching")
    assert run.saga.status == status
    events = run.feed("payment_refunded")
    assert run.event_names(events) == ["UndoneElsewhere"]
    assert (run.saga.status, run.saga.step, run.saga.plan) == (
        status,
        "cancel_shipment",
        ["cancel_order"],
    )
    assert run.saga.payment == "refunded"
    assert run.states()["capture"] == StepState.COMPENSATED


def test_only_an_undoing_of_what_was_done_is_news() -> None:
    assert Run().feed("payment_voided") == [], "nothing authorized to void"
    run = Run().run_to("capture")
    assert run.feed("payment_refunded") == [], "nothing captured to refund"
    assert run.event_names(run.feed("payment_voided"))[0] == "UndoneElsewhere"
    assert run.feed("payment_voided") == [], "told twice, remembered once"
    paid = Run().run_to("mark_paid")
    assert paid.feed("payment_voided") == [], "captured: a void cannot undo it"


def test_once_the_saga_has_ended_nothing_is_remembered() -> None:
    run = Run().run_to("capture")
    run.feed("shipment_cancelled")
    assert run.saga.step == "void_payment"
    run.feed("command_refused", "void_payment", 0, "cannot void: the payment is capturing")
    run.feed("resolve", "voided at the provider's console")
    assert run.saga.status is FulfilmentStatus.RESOLVED
    assert run.feed("payment_voided") == []
