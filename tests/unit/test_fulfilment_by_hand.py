"""Unit tests of an operator's `pay` and `ship` on an order whose fulfilment is running: done
before the saga asks, they are remembered and the saga's own step is counted done without a
command; the payment and the shipment still run, so money is captured once."""

import pytest

from contexts.fulfilment.definition import FulfilmentStatus, StepState
from tests.unit.test_fulfilment import Run


def test_an_order_paid_by_hand_early_is_not_paid_again_and_still_captured_once() -> None:
    run = Run()
    run.feed("order_paid")
    assert run.saga.order == "paid"
    run.feed("payment_authorized", "AUTH-1")
    run.feed("shipment_scheduled", "DHL", "TRACK-1")
    events = run.feed("payment_captured")
    assert run.event_names(events) == ["StepSucceeded", "StepDoneByHand", "StepRequested"]
    assert run.saga.step == "dispatch"
    assert run.issued == ["authorize", "schedule", "capture", "dispatch"]
    assert run.states()["mark_paid"] == StepState.DONE
    assert run.saga.records["mark_paid"]["detail"] == {"by": "operator"}
    run.feed("shipment_dispatched")
    run.feed("order_shipped")
    assert run.saga.status is FulfilmentStatus.COMPLETED
    assert run.issued.count("capture") == 1
    assert "mark_paid" not in run.issued


def test_an_order_paid_and_shipped_by_hand_completes_once_dispatched() -> None:
    run = Run().run_to("dispatch")
    run.feed("order_shipped")
    assert run.saga.order == "shipped"
    events = run.feed("shipment_dispatched")
    assert run.event_names(events) == ["StepSucceeded", "StepDoneByHand", "Completed"]
    assert run.saga.status is FulfilmentStatus.COMPLETED
    assert "mark_shipped" not in run.issued


@pytest.mark.parametrize("step", ["authorize", "schedule", "capture"])
def test_paying_by_hand_early_leaves_the_saga_where_it_was(step: str) -> None:
    run = Run().run_to(step)
    deadlines = dict(run.armed)
    events = run.feed("order_paid")
    assert run.event_names(events) == ["OrderMarkedByHand"]
    assert (run.saga.step, run.saga.status, run.armed) == (
        step,
        FulfilmentStatus.RUNNING,
        deadlines,
    )
    assert run.feed("order_paid") == [], "told twice, remembered once"


def test_an_order_paid_by_hand_is_still_cancelled_when_the_saga_compensates() -> None:
    run = Run().run_to("capture")
    run.feed("order_paid")
    run.fire("capture")
    assert run.saga.plan == ["void_payment", "cancel_order"]
    assert run.compensations() == ["cancel_shipment"]


def test_a_confirmation_while_the_saga_waits_for_that_step_is_the_step_itself() -> None:
    run = Run().run_to("mark_paid")
    events = run.feed("order_paid")
    assert run.event_names(events) == ["StepSucceeded", "StepRequested"]
    assert run.saga.records["mark_paid"]["detail"] == {}
    assert run.issued[-2:] == ["mark_paid", "dispatch"]


def test_pay_by_hand_after_the_saga_ended_changes_nothing() -> None:
    run = Run()
    run.feed("payment_declined", "insufficient funds")
    run.feed("order_cancelled", "payment declined: insufficient funds")
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert run.feed("order_paid") == []
