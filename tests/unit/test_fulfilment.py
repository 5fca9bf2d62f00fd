"""Unit tests of the OrderFulfilment saga: its ids, its happy path, the refusals and deadlines
that make it compensate, and the determinism of what it asks for. `Run` drives a saga the way its
process does (input -> events -> outbox) and is shared by the other test_fulfilment* modules."""

from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

import pytest
from eventsourcing.domain import Aggregate

from contexts.fulfilment import ids
from contexts.fulfilment.definition import (
    DEFINITION_VERSION,
    Deadline,
    FulfilmentPolicy,
    FulfilmentStatus,
    ParticipantCommand,
    StepState,
)
from contexts.fulfilment.domain import DEFAULT_POLICY, OrderFulfilment
from domain.aggregate import AggregateSnapshot
from domain.errors import InvalidValue
from domain.service import CommandService
from tests.support.aggregates import collected

ORDER_ID = UUID("0b6c1f52-8d5e-4a55-9a7e-2f0c4c3e9d01")
USER_ID = UUID("5d0e2b7a-3c4f-4e8a-b1d2-9f8e7d6c5b4a")
AMOUNT = Decimal("12.30")
SAGA_ID = ids.saga_id(ORDER_ID)

HAPPY_PATH: list[tuple[str, tuple[Any, ...]]] = [
    ("payment_authorized", ("AUTH-1",)),
    ("shipment_scheduled", ("DHL", "TRACK-1")),
    ("payment_captured", ()),
    ("order_paid", ()),
    ("shipment_dispatched", ()),
    ("order_shipped", ()),
]
FORWARD = ["authorize", "schedule", "capture", "mark_paid", "dispatch", "mark_shipped"]


class Run:
    """One saga, fed inputs as its process feeds them: after each input, the new events and
    their outbox; the deadlines set and not yet dropped or fired are `armed`."""

    def __init__(self, policy: FulfilmentPolicy = DEFAULT_POLICY) -> None:
        self.policy = policy
        self.saga = OrderFulfilment.start(ORDER_ID, USER_ID, AMOUNT, "EUR")
        self.events: list[Aggregate.Event] = []
        self.commands: list[ParticipantCommand] = []
        self.deadlines: list[Deadline] = []
        self.armed: dict[str, Deadline] = {}
        self.take()

    def take(self) -> list[Aggregate.Event]:
        new = collected(self.saga)
        commands, deadlines, cancelled = self.saga.outbox_after(new, self.policy)
        self.events += new
        self.commands += commands
        self.deadlines += deadlines
        self.armed |= {deadline.deadline_id: deadline for deadline in deadlines}
        for deadline_id in cancelled:
            self.armed.pop(deadline_id, None)
        return new

    def feed(self, name: str, *args: Any) -> list[Aggregate.Event]:
        getattr(self.saga, name)(*args)
        return self.take()

    def fire(self, step: str) -> list[Aggregate.Event]:
        """The armed deadline of `step` passes."""
        [deadline] = [each for each in self.armed.values() if each.step == step]
        del self.armed[deadline.deadline_id]
        self.saga.timed_out(step, deadline.deadline_id)
        return self.take()

    def run_to(self, step: str) -> "Run":
        """Confirm the forward steps until the saga waits for `step`."""
        for name, args in HAPPY_PATH:
            if self.saga.step == step:
                break
            self.feed(name, *args)
        assert self.saga.step == step
        return self

    def status(self) -> FulfilmentStatus:
        """The saga's status now: a call, which no earlier check of it narrows for mypy."""
        return self.saga.status

    @property
    def issued(self) -> list[str]:
        return [command.step for command in self.commands]

    def compensations(self) -> list[str]:
        return self.issued[self.issued.index(self.saga.step or "") :]

    def event_names(self, events: list[Aggregate.Event]) -> list[str]:
        return [type(event).__name__ for event in events]

    def states(self) -> dict[str, StepState]:
        return {record.name: record.state for record in self.saga.steps}


# ids


def test_ids_are_name_based_uuids_of_the_order_id() -> None:
    assert ids.saga_id(ORDER_ID) == uuid5(ids.NAMESPACE, f"fulfilment:{ORDER_ID}")
    assert ids.payment_id(ORDER_ID) == uuid5(ids.NAMESPACE, f"payment:{ORDER_ID}")
    assert ids.shipment_id(ORDER_ID) == uuid5(ids.NAMESPACE, f"shipment:{ORDER_ID}")
    assert len({ids.saga_id(ORDER_ID), ids.payment_id(ORDER_ID), ids.shipment_id(ORDER_ID)}) == 3
    assert ids.saga_id(USER_ID) != SAGA_ID


# start and the happy path


def test_start_records_the_order_and_the_definition_and_asks_for_the_authorization() -> None:
    run = Run()
    saga = run.saga
    assert saga.id == SAGA_ID
    assert (saga.order_id, saga.user_id, saga.amount, saga.currency) == (
        ORDER_ID,
        USER_ID,
        AMOUNT,
        "EUR",
    )
    assert saga.definition_version == DEFINITION_VERSION
    assert run.event_names(run.events) == ["Started", "StepRequested"]
    assert (saga.status, saga.step) == (FulfilmentStatus.RUNNING, "authorize")
    [command] = run.commands
    assert command == ParticipantCommand(
        step="authorize",
        target="payments",
        action="authorize",
        aggregate_id=ids.payment_id(ORDER_ID),
        body={
            "order_id": str(ORDER_ID),
            "user_id": str(USER_ID),
            "amount": "12.30",
            "currency": "EUR",
        },
        key=f"{SAGA_ID}:authorize:0",
    )
    assert run.deadlines == [
        Deadline("authorize", timedelta(seconds=30), f"{command.key}:deadline")
    ]


def test_start_refuses_a_bad_amount_or_currency() -> None:
    with pytest.raises(InvalidValue):
        OrderFulfilment.start(ORDER_ID, USER_ID, Decimal("-1"), "EUR")
    with pytest.raises(InvalidValue):
        OrderFulfilment.start(ORDER_ID, USER_ID, AMOUNT, "XXQ")


def test_the_happy_path_runs_every_step_in_order_and_completes() -> None:
    run = Run()
    for name, args in HAPPY_PATH:
        run.feed(name, *args)
    assert run.issued == FORWARD
    assert run.saga.status is FulfilmentStatus.COMPLETED
    assert run.saga.step is None
    assert run.armed == {}
    assert [deadline.step for deadline in run.deadlines] == [
        "authorize",
        "schedule",
        "capture",
        "dispatch",
    ]
    assert run.states() == dict.fromkeys(FORWARD, StepState.DONE)
    details = {record.name: record.detail for record in run.saga.steps}
    assert details["authorize"] == {"reference": "AUTH-1"}
    assert details["schedule"] == {"carrier": "DHL", "reference": "TRACK-1"}
    assert run.event_names(run.events)[-1] == "Completed"


def test_each_command_names_its_participant_and_aggregate() -> None:
    run = Run()
    for name, args in HAPPY_PATH:
        run.feed(name, *args)
    targets = [(c.target, c.action, c.aggregate_id) for c in run.commands]
    payment, shipment = ids.payment_id(ORDER_ID), ids.shipment_id(ORDER_ID)
    assert targets == [
        ("payments", "authorize", payment),
        ("shipping", "schedule", shipment),
        ("payments", "capture", payment),
        ("orders", "pay", ORDER_ID),
        ("shipping", "dispatch", shipment),
        ("orders", "ship", ORDER_ID),
    ]
    assert run.commands[1].body == {"order_id": str(ORDER_ID), "user_id": str(USER_ID)}
    assert [c.key for c in run.commands] == [f"{SAGA_ID}:{step}:0" for step in FORWARD]


def test_the_policy_sets_the_deadlines() -> None:
    policy = FulfilmentPolicy(
        authorize_timeout=timedelta(seconds=1),
        schedule_timeout=timedelta(seconds=2),
        capture_timeout=timedelta(seconds=3),
        dispatch_timeout=timedelta(seconds=4),
        compensation_timeout=timedelta(seconds=5),
    )
    run = Run(policy)
    for name, args in HAPPY_PATH[:4]:
        run.feed(name, *args)
    run.fire("dispatch")
    assert [d.due_in.seconds for d in run.deadlines] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("field", ["authorize_timeout", "compensation_timeout"])
def test_a_policy_refuses_a_duration_that_is_not_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FulfilmentPolicy(**{field: timedelta(0)})


# refusals


def test_a_decline_cancels_the_order_with_the_reason() -> None:
    run = Run()
    events = run.feed("payment_declined", "insufficient funds")
    assert run.event_names(events) == ["StepFailed", "CompensationStarted", "StepRequested"]
    assert [d.step for d in run.armed.values()] == ["cancel_order"], "authorize's is dropped"
    assert run.issued == ["authorize", "cancel_order"]
    assert run.commands[-1].body == {"reason": "payment declined: insufficient funds"}
    assert (run.commands[-1].target, run.commands[-1].action) == ("orders", "cancel")
    assert run.saga.status is FulfilmentStatus.COMPENSATING
    run.feed("order_cancelled", "payment declined: insufficient funds")
    assert run.status() is FulfilmentStatus.CANCELLED
    assert run.saga.reason == "payment declined: insufficient funds"
    assert run.states() == {"authorize": StepState.FAILED, "cancel_order": StepState.DONE}
    assert run.armed == {}


def test_a_carrier_failure_voids_the_payment_then_cancels_the_order() -> None:
    run = Run().run_to("schedule")
    run.feed("shipment_failed", "no carrier serves this address")
    assert run.issued[-1] == "void_payment"
    assert run.commands[-1].aggregate_id == ids.payment_id(ORDER_ID)
    run.feed("payment_voided")
    assert run.issued[-1] == "cancel_order"
    assert run.commands[-1].body == {"reason": "shipment failed: no carrier serves this address"}
    run.feed("order_cancelled", "shipment failed: no carrier serves this address")
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert run.states() == {
        "authorize": StepState.COMPENSATED,
        "schedule": StepState.FAILED,
        "void_payment": StepState.DONE,
        "cancel_order": StepState.DONE,
    }
    assert run.armed == {}


def test_a_reason_is_made_acceptable_to_the_orders_context() -> None:
    run = Run()
    run.feed("payment_declined", "bad\x00card " + "x" * 600)
    reason = run.commands[-1].body["reason"]
    assert reason.startswith("payment declined: bad card x")
    assert len(reason) == 500


# deadlines


@pytest.mark.parametrize(
    ("step", "compensations", "confirmations"),
    [
        ("authorize", ["cancel_order"], ["order_cancelled"]),
        (
            "schedule",
            ["cancel_shipment", "void_payment", "cancel_order"],
            ["shipment_cancelled", "payment_voided", "order_cancelled"],
        ),
        (
            "capture",
            ["cancel_shipment", "void_payment", "cancel_order"],
            ["shipment_cancelled", "payment_voided", "order_cancelled"],
        ),
        (
            "dispatch",
            ["cancel_shipment", "refund_payment", "cancel_order"],
            ["shipment_cancelled", "payment_refunded", "order_cancelled"],
        ),
    ],
)
def test_a_deadline_compensates_what_was_done_in_reverse_one_at_a_time(
    step: str, compensations: list[str], confirmations: list[str]
) -> None:
    run = Run().run_to(step)
    events = run.fire(step)
    assert run.event_names(events)[:2] == ["StepTimedOut", "CompensationStarted"]
    assert run.saga.reason == f"{step} timed out"
    for expected, confirmation in zip(compensations, confirmations, strict=True):
        assert run.saga.step == expected
        assert run.issued[-1] == expected, "one compensation at a time"
        assert [d.step for d in run.armed.values()] == [expected]
        run.feed(confirmation, *(["by the saga"] if confirmation == "order_cancelled" else []))
    assert run.issued[run.issued.index(step) + 1 :] == compensations
    assert run.saga.status is FulfilmentStatus.CANCELLED
    assert run.states()[step] == StepState.FAILED
    assert run.armed == {}
    assert run.commands[-1].body == {"reason": f"{step} timed out"}


@pytest.mark.parametrize("step", ["mark_paid", "mark_shipped"])
def test_the_orders_steps_have_no_deadline(step: str) -> None:
    run = Run().run_to(step)
    assert run.armed == {}
    run.saga.timed_out(step, f"{SAGA_ID}:{step}:0:deadline")
    assert run.take() == []


def test_a_deadline_of_a_step_no_longer_current_is_ignored() -> None:
    run = Run()
    [authorize_deadline] = run.deadlines
    run.feed("payment_authorized", "AUTH-1")
    run.saga.timed_out("authorize", authorize_deadline.deadline_id)
    run.saga.timed_out("schedule", authorize_deadline.deadline_id)
    run.saga.timed_out("schedule", "unknown")
    run.saga.timed_out("no-such-step", "unknown")
    assert run.take() == []
    assert run.saga.status is FulfilmentStatus.RUNNING


# determinism


def replayed(events: list[Aggregate.Event]) -> OrderFulfilment:
    saga = None
    for event in events:
        saga = event.mutate(saga)
    assert isinstance(saga, OrderFulfilment)
    return saga


def test_a_redelivered_input_after_a_crash_yields_the_same_commands_and_keys() -> None:
    run = Run().run_to("capture")
    committed = list(run.events)
    run.fire("capture")
    first = run.saga.outbox_after(run.events[len(committed) :])

    again = replayed(committed)  # the process died before committing; it reloads and redoes
    again.timed_out("capture", f"{SAGA_ID}:capture:0:deadline")
    second = again.outbox_after(collected(again))
    assert second == first
    assert [c.key for c in second.commands] == [f"{SAGA_ID}:cancel_shipment:0"]


def test_the_outbox_of_the_whole_history_equals_what_was_handed_out() -> None:
    run = Run().run_to("dispatch")
    run.fire("dispatch")
    run.feed("shipment_cancelled")
    commands, deadlines, _ = run.saga.outbox_after(run.events)
    assert (commands, deadlines) == (run.commands, run.deadlines)


def test_the_fold_of_its_events_is_the_saga() -> None:
    run = Run().run_to("mark_paid")
    run.feed("order_cancelled", "customer called")
    assert vars(replayed(run.events)) == vars(run.saga)


class Fulfilments(CommandService):
    """Only for the snapshot test: the fulfilment context's service is built elsewhere."""


def test_a_snapshot_restores_the_saga_exactly() -> None:
    run = Run().run_to("capture")
    run.fire("capture")
    service = Fulfilments(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    assert service.snapshots is not None
    service.snapshots.put([OrderFulfilment.Snapshot.take(run.saga)])
    [stored] = service.snapshots.get(run.saga.id, desc=True, limit=1)
    assert isinstance(stored, AggregateSnapshot)
    restored = stored.mutate(None)
    state = {name: (type(value), value) for name, value in vars(run.saga).items()}
    assert {name: (type(value), value) for name, value in vars(restored).items()} == state
    assert restored.steps == run.saga.steps


def test_its_events_are_its_own_nested_classes_as_the_registry_lists_them() -> None:
    nested = {
        name: member
        for name, member in vars(OrderFulfilment).items()
        if isinstance(member, type) and issubclass(member, OrderFulfilment.Event)
    }
    del nested["Event"], nested["Created"]  # the library's bases, nested in every aggregate
    assert set(nested) == {
        "Started", "StepRequested", "StepSucceeded", "StepFailed", "StepAbandoned",
        "StepTimedOut", "StepRefused", "OrderCancelled", "OrderMarkedByHand", "StepDoneByHand",
        "UndoneElsewhere", "CompensationStarted", "PlanRevised", "Completed", "Cancelled",
        "Parked", "Retried", "StepSkipped", "Resolved",
    }  # fmt: skip
    for name, event in nested.items():
        assert event.__qualname__ == f"OrderFulfilment.{name}"
        assert event.__module__ == "contexts.fulfilment.domain"
        assert getattr(event, "class_version", None) == 1
