"""Unit tests of the OrderFulfilment saga told that a participant refused one of its commands
(`command_refused`): it decides at once what the step's deadline would have decided, in the
participant's words, and takes each refusal once."""

import pytest

from contexts.fulfilment.definition import FulfilmentStatus, StepState
from tests.unit.test_fulfilment import SAGA_ID, Run

DISPATCHING = "cannot cancel: the shipment is dispatching, it must be scheduled"


def cancelled_while_dispatching() -> Run:
    """An operator cancelled the order while the saga waited for the shipment's dispatch."""
    run = Run().run_to("dispatch")
    run.feed("order_cancelled", "customer called")
    assert (run.saga.step, run.saga.plan) == ("cancel_shipment", ["refund_payment"])
    return run


def test_a_refused_compensation_parks_the_saga_at_once_in_the_participants_words() -> None:
    run = cancelled_while_dispatching()
    events = run.feed("command_refused", "cancel_shipment", 0, DISPATCHING)
    assert run.event_names(events) == ["StepRefused", "Parked"]
    assert (run.saga.status, run.saga.step) == (FulfilmentStatus.PARKED, "cancel_shipment")
    assert run.saga.attention == f"shipping refused cancel: {DISPATCHING}"
    assert run.saga.reason == "customer called"
    assert run.saga.plan == ["refund_payment"], "nothing is dropped"
    [refused] = [step for step in run.saga.steps if step.name == "cancel_shipment"]
    assert (refused.state, refused.detail) == (StepState.FAILED, {"reason": DISPATCHING})
    assert run.armed == {}, "the step's deadline has nothing left to decide"


def test_a_refusal_taken_twice_is_taken_once() -> None:
    run = cancelled_while_dispatching()
    run.feed("command_refused", "cancel_shipment", 0, DISPATCHING)
    assert run.feed("command_refused", "cancel_shipment", 0, DISPATCHING) == []
    assert run.feed("command_refused", "cancel_shipment", 0, "the shipment is dispatched") == []
    assert run.saga.attention == f"shipping refused cancel: {DISPATCHING}"


def test_a_refusal_of_a_command_no_longer_waited_for_is_stale() -> None:
    run = cancelled_while_dispatching()
    for step, generation in [("dispatch", 0), ("capture", 0), ("cancel_shipment", 1), ("x", 0)]:
        assert run.feed("command_refused", step, generation, "no") == [], (step, generation)
    run.feed("shipment_cancelled")
    assert run.feed("command_refused", "cancel_shipment", 0, DISPATCHING) == []
    assert (run.saga.status, run.saga.step) == (FulfilmentStatus.COMPENSATING, "refund_payment")


def test_after_a_retry_only_the_new_commands_refusal_counts() -> None:
    run = cancelled_while_dispatching()
    run.feed("command_refused", "cancel_shipment", 0, DISPATCHING)
    run.feed("retry")
    assert run.feed("command_refused", "cancel_shipment", 0, DISPATCHING) == []
    assert run.saga.status is FulfilmentStatus.COMPENSATING
    events = run.feed("command_refused", "cancel_shipment", 1, "the shipment is dispatched")
    assert run.event_names(events) == ["StepRefused", "Parked"]
    assert run.saga.attention == "shipping refused cancel: the shipment is dispatched"


def test_a_refused_step_parked_on_resumes_when_confirmed_after_all() -> None:
    """The order was cancelled by an operator between the saga's asking and its command: orders
    refuses to cancel it again, and the operator's cancellation then confirms the step."""
    run = Run().run_to("schedule")
    run.feed("shipment_failed", "no carrier")
    run.feed("payment_voided")
    run.feed("command_refused", "cancel_order", 0, "cannot cancel an order that is cancelled")
    assert run.saga.status is FulfilmentStatus.PARKED
    run.feed("order_cancelled", "customer called")
    assert run.status() is FulfilmentStatus.CANCELLED


def test_a_refused_late_void_parks_the_cancelled_saga() -> None:
    run = Run()
    run.fire("authorize")
    run.feed("order_cancelled", "authorize timed out")
    run.feed("payment_authorized", "AUTH-LATE")
    run.feed("command_refused", "void_payment", 0, "cannot void: the payment is capturing")
    assert run.saga.status is FulfilmentStatus.PARKED
    assert run.saga.attention == "payments refused void: cannot void: the payment is capturing"


@pytest.mark.parametrize(
    ("step", "words"),
    [
        ("authorize", "payments refused authorize"),
        ("schedule", "shipping refused schedule"),
        ("capture", "payments refused capture"),
        ("dispatch", "shipping refused dispatch"),
    ],
)
def test_a_refused_forward_step_compensates_as_its_deadline_would(step: str, words: str) -> None:
    refused, timed_out = Run().run_to(step), Run().run_to(step)
    events = refused.feed("command_refused", step, 0, "not now, not ever")
    timed_out.fire(step)
    assert refused.event_names(events)[:2] == ["StepRefused", "CompensationStarted"]
    assert refused.saga.reason == f"{words}: not now, not ever"
    assert refused.issued == timed_out.issued
    assert (refused.saga.step, refused.saga.plan) == (timed_out.saga.step, timed_out.saga.plan)
    assert [d.step for d in refused.armed.values()] == [d.step for d in timed_out.armed.values()]
    assert refused.states()[step] == StepState.FAILED


@pytest.mark.parametrize(
    ("step", "by_hand", "next_step"),
    [("mark_paid", "order_paid", "dispatch"), ("mark_shipped", "order_shipped", None)],
)
def test_a_refused_step_on_the_order_is_decided_by_the_orders_events(
    step: str, by_hand: str, next_step: str | None
) -> None:
    """Orders refuses to mark an order paid that an operator paid a moment earlier: the saga
    records the refusal and waits for the order's `Paid`, which confirms the step."""
    run = Run().run_to(step)
    events = run.feed("command_refused", step, 0, f"cannot {step}: the order is done by hand")
    assert run.event_names(events) == ["StepRefused"]
    assert (run.saga.status, run.saga.step) == (FulfilmentStatus.RUNNING, step)
    assert run.feed("command_refused", step, 0, "again") == []
    run.feed(by_hand)
    assert run.states()[step] == StepState.DONE
    assert run.saga.step == next_step
    assert "cancel_order" not in run.issued


def test_a_refused_step_on_the_order_compensates_once_the_order_is_cancelled() -> None:
    run = Run().run_to("mark_paid")
    run.feed("command_refused", "mark_paid", 0, "cannot mark it paid: the order is cancelled")
    run.feed("order_cancelled", "customer called")
    assert run.saga.status is FulfilmentStatus.COMPENSATING
    assert run.saga.reason == "customer called"


def test_a_deadline_after_the_refusal_of_its_step_changes_nothing() -> None:
    run = cancelled_while_dispatching()
    run.feed("command_refused", "cancel_shipment", 0, DISPATCHING)
    run.saga.timed_out("cancel_shipment", f"{SAGA_ID}:cancel_shipment:0:deadline")
    assert run.take() == []
