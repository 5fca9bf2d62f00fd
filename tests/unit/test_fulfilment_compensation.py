"""Unit tests of the OrderFulfilment saga off its happy path: late replies, an operator's
cancellation, parking, retry and resolve, and inputs that do not apply."""

from typing import Any

import pytest

from contexts.fulfilment.definition import FulfilmentStatus, StepState
from domain.errors import InvalidValue
from tests.unit.test_fulfilment import FORWARD, HAPPY_PATH, SAGA_ID, Run

# late replies


def test_a_late_authorization_is_voided_after_the_order_is_cancelled() -> None:
    run = Run()
    run.fire("authorize")
    assert run.issued == ["authorize", "cancel_order"]
    events = run.feed("payment_authorized", "AUTH-LATE")
    assert run.event_names(events) == ["StepSucceeded", "PlanRevised"]
    assert run.saga.plan == ["void_payment"], "queued behind the pending cancellation"
    run.feed("order_cancelled", "authorize timed out")
    assert run.issued[-1] == "void_payment"
    run.feed("payment_voided")
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert run.states()["authorize"] == StepState.COMPENSATED
    assert run.armed == {}


def test_a_late_authorization_after_the_saga_ended_cancelled_is_voided_and_it_stays_cancelled() -> (
    None
):
    run = Run()
    run.fire("authorize")
    run.feed("order_cancelled", "authorize timed out")
    assert run.saga.status is FulfilmentStatus.CANCELLED
    events = run.feed("payment_authorized", "AUTH-LATE")
    assert run.event_names(events) == ["StepSucceeded", "StepRequested"]
    assert run.issued[-1] == "void_payment"
    assert [d.step for d in run.armed.values()] == ["void_payment"]
    assert run.saga.status is FulfilmentStatus.CANCELLED
    events = run.feed("payment_voided")
    assert run.event_names(events) == ["StepSucceeded"]
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert run.saga.steps[-1].name == "void_payment"
    assert run.armed == {}


def test_a_late_decline_changes_nothing() -> None:
    run = Run()
    run.fire("authorize")
    assert run.feed("payment_declined", "too late") == []
    run.feed("order_cancelled", "authorize timed out")
    assert run.feed("payment_declined", "too late") == []
    assert run.feed("payment_authorized", "AUTH-1") != [], "an authorization is still voided"


def test_an_unconfirmed_late_void_parks_the_cancelled_saga() -> None:
    run = Run()
    run.fire("authorize")
    run.feed("order_cancelled", "authorize timed out")
    run.feed("payment_authorized", "AUTH-LATE")
    run.fire("void_payment")
    assert run.saga.status is FulfilmentStatus.PARKED
    run.feed("retry")
    run.feed("payment_voided")
    assert run.status() is FulfilmentStatus.CANCELLED


def test_a_late_capture_turns_the_planned_void_into_a_refund() -> None:
    run = Run().run_to("capture")
    run.fire("capture")
    assert run.saga.plan == ["void_payment", "cancel_order"]
    events = run.feed("payment_captured")
    assert run.event_names(events) == ["StepSucceeded", "PlanRevised"]
    assert run.saga.plan == ["refund_payment", "cancel_order"]
    run.feed("shipment_cancelled")
    run.feed("payment_refunded")
    run.feed("order_cancelled", "capture timed out")
    assert run.issued[run.issued.index("capture") + 1 :] == [
        "cancel_shipment",
        "refund_payment",
        "cancel_order",
    ]
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert run.states()["capture"] == StepState.COMPENSATED


def test_a_late_capture_abandons_a_pending_void_for_a_refund() -> None:
    run = Run().run_to("capture")
    run.fire("capture")
    run.feed("shipment_cancelled")
    assert run.saga.step == "void_payment"
    events = run.feed("payment_captured")
    assert run.event_names(events) == ["StepSucceeded", "StepAbandoned", "StepRequested"]
    assert run.issued[-1] == "refund_payment"
    assert [d.step for d in run.armed.values()] == ["refund_payment"]
    assert run.states()["void_payment"] == StepState.FAILED
    assert run.feed("payment_voided") == [], "the abandoned void no longer counts"


def test_a_late_capture_after_the_saga_ended_cancelled_is_refunded() -> None:
    run = Run().run_to("capture")
    run.fire("capture")
    for name, args in [("shipment_cancelled", ()), ("payment_voided", ())]:
        run.feed(name, *args)
    run.feed("order_cancelled", "capture timed out")
    assert run.saga.status is FulfilmentStatus.CANCELLED
    run.feed("payment_captured")
    assert run.issued[-1] == "refund_payment"
    run.feed("payment_refunded")
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert run.feed("payment_captured") == []


def test_a_shipment_failure_settles_its_pending_cancellation() -> None:
    run = Run().run_to("schedule")
    run.fire("schedule")
    assert run.saga.step == "cancel_shipment"
    run.feed("shipment_failed", "no carrier")
    assert run.saga.step == "void_payment"


# an operator's cancellation


@pytest.mark.parametrize(
    ("step", "compensations"),
    [
        ("authorize", []),
        ("schedule", ["cancel_shipment", "void_payment"]),
        ("capture", ["cancel_shipment", "void_payment"]),
        ("mark_paid", ["cancel_shipment", "refund_payment"]),
        ("dispatch", ["cancel_shipment", "refund_payment"]),
        ("mark_shipped", ["refund_payment"]),
    ],
)
def test_an_operator_cancellation_compensates_what_was_done_without_cancelling_again(
    step: str, compensations: list[str]
) -> None:
    run = Run().run_to(step)
    events = run.feed("order_cancelled", "customer called")
    assert run.event_names(events)[:3] == ["OrderCancelled", "StepAbandoned", "CompensationStarted"]
    assert run.states()[step] == StepState.FAILED
    confirmations = {
        "cancel_shipment": "shipment_cancelled",
        "void_payment": "payment_voided",
        "refund_payment": "payment_refunded",
    }
    for expected in compensations:
        assert (run.saga.step, run.issued[-1]) == (expected, expected)
        run.feed(confirmations[expected])
    assert run.issued[run.issued.index(step) + 1 :] == compensations
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert run.saga.reason == "customer called"
    assert run.event_names(run.events)[-1] == "Cancelled"
    assert run.armed == {}


def test_an_operator_cancellation_during_compensation_drops_the_planned_cancellation() -> None:
    run = Run().run_to("schedule")
    run.feed("shipment_failed", "no carrier")
    run.feed("order_cancelled", "customer called")
    assert run.saga.plan == []
    run.feed("payment_voided")
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert "cancel_order" not in run.issued
    assert run.saga.reason == "shipment failed: no carrier"


# parking, retry, resolve


def parked_at_void() -> Run:
    run = Run().run_to("schedule")
    run.feed("shipment_failed", "no carrier")
    run.fire("void_payment")
    return run


def test_an_unconfirmed_compensation_parks_the_saga_for_a_person() -> None:
    run = parked_at_void()
    assert run.event_names(run.events)[-2:] == ["StepTimedOut", "Parked"]
    assert run.saga.status is FulfilmentStatus.PARKED
    assert run.saga.step == "void_payment"
    assert run.saga.attention == "void_payment was not confirmed before its deadline"
    assert run.saga.plan == ["cancel_order"], "nothing is dropped"
    assert run.armed == {}


def test_retry_asks_again_with_a_new_key_and_a_new_deadline() -> None:
    run = parked_at_void()
    events = run.feed("retry")
    assert run.event_names(events) == ["Retried", "StepRequested"]
    assert run.saga.status is FulfilmentStatus.COMPENSATING
    assert [c.key for c in run.commands if c.step == "void_payment"] == [
        f"{SAGA_ID}:void_payment:0",
        f"{SAGA_ID}:void_payment:1",
    ]
    assert list(run.armed) == [f"{SAGA_ID}:void_payment:1:deadline"]
    run.saga.timed_out("void_payment", f"{SAGA_ID}:void_payment:0:deadline")
    assert run.take() == [], "the first generation's deadline is stale"
    run.feed("payment_voided")
    assert run.commands[-1].key == f"{SAGA_ID}:cancel_order:1"
    run.feed("order_cancelled", "shipment failed: no carrier")
    assert run.status() is FulfilmentStatus.CANCELLED


def test_a_retried_compensation_that_fails_again_parks_again() -> None:
    run = parked_at_void()
    run.feed("retry")
    run.fire("void_payment")
    assert run.saga.status is FulfilmentStatus.PARKED


def test_resolve_ends_a_parked_saga() -> None:
    run = parked_at_void()
    events = run.feed("resolve", "voided by hand at the provider")
    assert run.event_names(events) == ["Resolved"]
    assert run.saga.status is FulfilmentStatus.RESOLVED
    assert run.saga.note == "voided by hand at the provider"
    assert (run.saga.step, run.saga.plan, run.saga.attention) == (None, [], None)
    for name, args in [("payment_voided", ()), ("payment_authorized", ("A",)), ("retry", ())]:
        assert run.feed(name, *args) == [], name


def test_resolve_refuses_an_empty_note() -> None:
    run = parked_at_void()
    with pytest.raises(InvalidValue):
        run.saga.resolve("  ")


def test_a_late_confirmation_resumes_a_parked_compensation() -> None:
    run = parked_at_void()
    run.feed("payment_voided")
    assert run.saga.status is FulfilmentStatus.COMPENSATING
    assert run.issued[-1] == "cancel_order"


@pytest.mark.parametrize("step", ["authorize", "schedule", "mark_shipped"])
def test_retry_and_resolve_do_nothing_unless_parked(step: str) -> None:
    run = Run().run_to(step)
    assert run.feed("retry") == []
    assert run.feed("resolve", "nothing to do") == []


# inputs that do not apply

ALL_INPUTS: list[tuple[str, tuple[Any, ...]]] = [
    *HAPPY_PATH,
    ("payment_declined", ("no",)),
    ("shipment_failed", ("no",)),
    ("payment_voided", ()),
    ("payment_refunded", ()),
    ("shipment_cancelled", ()),
    ("order_cancelled", ("late",)),
    ("retry", ()),
    ("resolve", ("note",)),
    ("skip", ("note",)),
    *[("command_refused", (step, 0, "no")) for step in [*FORWARD, "cancel_order"]],
]


def test_after_completion_every_input_is_ignored() -> None:
    run = Run()
    for name, args in HAPPY_PATH:
        run.feed(name, *args)
    for name, args in ALL_INPUTS:
        assert run.feed(name, *args) == [], name
    assert run.saga.status is FulfilmentStatus.COMPLETED


def test_duplicates_and_replies_to_nothing_asked_record_nothing() -> None:
    """A void, refund or cancellation the saga did not ask for is news, not a reply: it is
    remembered (test_fulfilment_undone_elsewhere)."""
    run = Run()
    participants_replies = [(name, args) for name, args in HAPPY_PATH if "order" not in name]
    for name, args in participants_replies[1:]:  # the order's, by hand: test_fulfilment_by_hand
        assert run.feed(name, *args) == [], f"{name} before it was asked for"
    for index, (name, args) in enumerate(HAPPY_PATH[:-1]):
        run.feed(name, *args)
        for earlier_name, earlier_args in HAPPY_PATH[: index + 1]:
            assert run.feed(earlier_name, *earlier_args) == [], f"{earlier_name} again"
    assert run.issued == [step for step in run.issued if run.issued.count(step) == 1]


def test_a_cancelled_saga_ignores_everything_but_late_payments() -> None:
    run = Run().run_to("schedule")
    run.feed("shipment_failed", "no carrier")
    run.feed("payment_voided")
    run.feed("order_cancelled", "shipment failed: no carrier")
    for name, args in ALL_INPUTS:
        assert run.feed(name, *args) == [], name
    assert run.saga.status is FulfilmentStatus.CANCELLED
