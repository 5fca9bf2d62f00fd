"""The fulfilment's read side keeps its own copies of what the write side defines (the read side
imports no context code): these must stay equal to the originals."""

from enum import StrEnum
from typing import Any

from contexts.fulfilment.definition import STEPS, FulfilmentStatus
from contexts.payments.domain import PaymentStatus
from contexts.shipping.domain import ShipmentStatus
from projections.models import fulfilments
from read_api import fulfilment_endpoints, payment_endpoints, shipment_endpoints
from tests.unit.test_fulfilment import Run

ENVELOPE = ("originator_id", "originator_version", "timestamp")
"""What the envelope carries beside an event's data."""


def test_the_fold_knows_what_each_compensation_undoes() -> None:
    undoes = {name: step.undoes for name, step in STEPS.items() if step.undoes}
    assert undoes == fulfilments.UNDOES


def values(statuses: type[StrEnum]) -> list[str]:
    return [status.value for status in statuses]


def test_the_status_filters_name_the_aggregates_statuses() -> None:
    assert values(FulfilmentStatus) == values(fulfilment_endpoints.SagaStatus)
    assert values(PaymentStatus) == values(payment_endpoints.PaymentLedgerStatus)
    assert values(ShipmentStatus) == values(shipment_endpoints.ShipmentBoardStatus)


def test_a_retried_step_keeps_its_place_and_resumes_a_parked_saga() -> None:
    at = "2026-01-01T00:00:00+00:00"
    saga = fulfilments.Saga("running")
    events: list[tuple[str, dict[str, Any]]] = [
        ("StepRequested", {"step": "authorize", "generation": 0}),
        ("StepSucceeded", {"step": "authorize", "generation": 0, "detail": {"reference": "r"}}),
        ("CompensationStarted", {"reason": "why", "plan": ["void_payment"]}),
        ("StepRequested", {"step": "void_payment", "generation": 0}),
        ("StepTimedOut", {"step": "void_payment", "generation": 0, "deadline_id": "d"}),
        ("Parked", {"step": "void_payment", "reason": "not confirmed"}),
    ]
    for event_type, data in events:
        saga = fulfilments.fold(saga, event_type, data, at)
    assert (saga.status, saga.step, saga.attention) == ("parked", "void_payment", "not confirmed")
    saga = fulfilments.fold(saga, "Retried", {"generation": 1}, at)
    saga = fulfilments.fold(saga, "StepRequested", {"step": "void_payment", "generation": 1}, at)
    assert (saga.status, saga.attention) == ("compensating", None)
    assert [(s["name"], s["state"]) for s in saga.steps] == [
        ("authorize", "done"),
        ("void_payment", "pending"),
    ]
    saga = fulfilments.fold(saga, "StepSucceeded", {"step": "void_payment", "detail": {}}, at)
    assert [s["state"] for s in saga.steps] == ["compensated", "done"]
    assert saga.step is None


def assert_shown_as_the_saga_holds_it(run: Run) -> list[tuple[str, str, dict[str, str]]]:
    """The fold of the saga's events shows what the saga holds; the steps it shows."""
    saga = fulfilments.Saga("running")
    for event in run.events[1:]:  # `Started` inserts the row
        data = {name: value for name, value in vars(event).items() if name not in ENVELOPE}
        saga = fulfilments.fold(saga, type(event).__name__, data, event.timestamp.isoformat())
    held = run.saga
    assert (saga.status, saga.step, saga.attention, saga.reason, saga.note) == (
        held.status,
        held.step,
        held.attention,
        held.reason,
        held.note,
    )
    shown = [(step["name"], step["state"], step["detail"]) for step in saga.steps]
    assert shown == [(step.name, step.state, step.detail) for step in held.steps]
    return shown


def test_a_refused_compensation_is_shown_as_the_saga_holds_it() -> None:
    run = Run().run_to("dispatch")
    run.feed("order_cancelled", "customer called")
    run.feed("command_refused", "cancel_shipment", 0, "the shipment is dispatching")
    assert_shown_as_the_saga_holds_it(run)


def test_a_payment_refunded_by_someone_else_is_shown_as_the_saga_holds_it() -> None:
    run = Run().run_to("dispatch")
    run.feed("payment_refunded")
    shown = assert_shown_as_the_saga_holds_it(run)
    assert [(name, state) for name, state, _ in shown][:3] == [
        ("authorize", "compensated"),
        ("schedule", "done"),
        ("capture", "compensated"),
    ]


def test_a_skipped_compensation_is_shown_as_the_saga_holds_it() -> None:
    run = Run().run_to("dispatch")
    run.feed("order_cancelled", "customer called")
    run.feed("command_refused", "cancel_shipment", 0, "the shipment is dispatching")
    run.feed("skip", "handed back at the depot")
    shown = assert_shown_as_the_saga_holds_it(run)
    assert ("cancel_shipment", "skipped") in [(name, state) for name, state, _ in shown]
