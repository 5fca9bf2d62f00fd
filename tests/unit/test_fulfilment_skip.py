"""Unit tests of an operator's `skip(note)` of the compensation step a parked saga is parked on:
recorded with the note (`StepSkipped`), it goes on with the rest of its compensation itself,
and does nothing to a saga that is not parked."""

import pytest

from contexts.fulfilment.definition import FulfilmentStatus, StepState
from domain.errors import InvalidValue
from tests.unit.test_fulfilment import SAGA_ID, Run
from tests.unit.test_fulfilment_compensation import parked_at_void
from tests.unit.test_fulfilment_refusals import DISPATCHING, cancelled_while_dispatching

NOTE = "the parcel was handed back at the depot"


def parked_on_a_refused_cancellation() -> Run:
    """The order cancelled while the shipment is dispatching: shipping refuses to cancel it, and
    the saga parks with the payment still captured."""
    run = cancelled_while_dispatching()
    run.feed("command_refused", "cancel_shipment", 0, DISPATCHING)
    assert (run.saga.status, run.saga.plan) == (FulfilmentStatus.PARKED, ["refund_payment"])
    return run


def test_skipping_a_refused_cancellation_refunds_the_payment_and_ends_cancelled() -> None:
    run = parked_on_a_refused_cancellation()
    events = run.feed("skip", NOTE)
    assert run.event_names(events) == ["StepSkipped", "StepRequested"]
    assert (run.saga.status, run.saga.step, run.saga.attention) == (
        FulfilmentStatus.COMPENSATING,
        "refund_payment",
        None,
    )
    [skipped] = [step for step in run.saga.steps if step.name == "cancel_shipment"]
    assert (skipped.state, skipped.detail) == (
        StepState.SKIPPED,
        {"reason": DISPATCHING, "note": NOTE},
    )
    assert run.commands[-1].key == f"{SAGA_ID}:refund_payment:0"
    assert [d.step for d in run.armed.values()] == ["refund_payment"]
    run.feed("payment_refunded")
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert run.saga.reason == "customer called", "the order was cancelled by the operator"
    assert run.armed == {}


def test_skipping_a_timed_out_void_goes_on_to_cancel_the_order() -> None:
    run = parked_at_void()
    run.feed("skip", "voided at the provider's console")
    assert (run.saga.step, run.issued[-1]) == ("cancel_order", "cancel_order")
    run.feed("order_cancelled", "shipment failed: no carrier")
    assert run.saga.status is FulfilmentStatus.CANCELLED


def test_skipping_the_last_compensation_ends_the_saga_cancelled() -> None:
    run = Run()
    run.fire("authorize")
    run.fire("cancel_order")
    assert (run.saga.status, run.saga.step) == (FulfilmentStatus.PARKED, "cancel_order")
    events = run.feed("skip", "the customer will cancel it themselves")
    assert run.event_names(events) == ["StepSkipped", "Cancelled"]
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert (run.saga.step, run.saga.plan, run.armed) == (None, [], {})


def test_the_skipped_steps_late_refusal_and_deadline_are_stale_its_confirmation_news() -> None:
    run = parked_on_a_refused_cancellation()
    run.feed("skip", NOTE)
    assert run.feed("command_refused", "cancel_shipment", 0, DISPATCHING) == []
    run.saga.timed_out("cancel_shipment", f"{SAGA_ID}:cancel_shipment:0:deadline")
    assert run.take() == []
    assert run.feed("skip", NOTE) == [], "no longer parked"
    assert run.event_names(run.feed("shipment_cancelled")) == ["UndoneElsewhere"]
    assert (run.saga.status, run.saga.step) == (FulfilmentStatus.COMPENSATING, "refund_payment")


def test_skip_refuses_an_empty_note() -> None:
    run = parked_on_a_refused_cancellation()
    with pytest.raises(InvalidValue):
        run.saga.skip(" ")
    assert run.take() == []


@pytest.mark.parametrize("step", ["authorize", "capture", "mark_shipped"])
def test_skip_does_nothing_to_a_running_saga(step: str) -> None:
    assert Run().run_to(step).feed("skip", NOTE) == []


def test_skip_does_nothing_to_a_compensating_or_ended_saga() -> None:
    run = cancelled_while_dispatching()
    assert run.feed("skip", NOTE) == [], "compensating: it waits for the cancellation"
    run.feed("command_refused", "cancel_shipment", 0, DISPATCHING)
    run.feed("resolve", "refunded by hand")
    assert run.feed("skip", NOTE) == []
    assert run.saga.status is FulfilmentStatus.RESOLVED
