"""Unit tests of the OrderFulfilment saga told that its payment was voided or refunded, or its
shipment cancelled, when it was not waiting for that (an operator did it, or a command of its
own it had stopped waiting for): it remembers, and never asks for it later. Payments and shipping
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
def test_what_was_undone_while_the_saga_ran_is_not_asked_for_when_it_compensates(
    step: str, undone: str, plan: list[str]
) -> None:
    run = Run().run_to(step)
    events = run.feed(CONFIRMATIONS[undone])
    assert run.event_names(events) == ["UndoneElsewhere"]
    assert (run.saga.status, run.saga.step) == (FulfilmentStatus.RUNNING, step), "it goes on"
    run.fire(step)
    assert [run.saga.step, *run.saga.plan] == plan
    for compensation in plan[:-1]:
        run.feed(CONFIRMATIONS[compensation])
    run.feed("order_cancelled", f"{step} timed out")
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert undone not in run.issued
    assert run.armed == {}


def test_a_payment_voided_by_an_operator_is_not_voided_again_when_the_shipment_fails() -> None:
    """The review's case: the saga asked payments to void a voided payment, payments had nothing
    to record, and the saga parked when the void's deadline passed."""
    run = Run().run_to("schedule")
    run.feed("payment_voided")
    run.feed("shipment_failed", "no carrier")
    assert (run.saga.step, run.saga.plan) == ("cancel_order", [])
    run.feed("order_cancelled", "shipment failed: no carrier")
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert run.issued == ["authorize", "schedule", "cancel_order"]
    assert run.states()["authorize"] == StepState.COMPENSATED


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
    run = Run()
    assert run.feed("payment_voided") == [], "nothing authorized to void"
    run.run_to("capture")
    assert run.feed("payment_refunded") == [], "nothing captured to refund"
    assert run.event_names(run.feed("payment_voided")) == ["UndoneElsewhere"]
    assert run.feed("payment_voided") == [], "told twice, remembered once"
    run.run_to("mark_paid")
    assert run.feed("payment_voided") == [], "captured: a void cannot undo it"


def test_once_the_saga_has_ended_nothing_is_remembered() -> None:
    run = Run().run_to("capture")
    assert run.event_names(run.feed("shipment_cancelled")) == ["UndoneElsewhere"]
    run.fire("capture")
    run.feed("command_refused", "void_payment", 0, "cannot void: the payment is capturing")
    run.feed("resolve", "voided at the provider's console")
    assert run.saga.status is FulfilmentStatus.RESOLVED
    assert run.feed("payment_voided") == []
