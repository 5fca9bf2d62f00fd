"""Unit tests for the Shipment aggregate: its transitions, the jobs its events start and finish,
and its snapshot."""

from collections.abc import Callable
from uuid import uuid4

import pytest

from contexts.shipping.domain import Shipment, ShipmentStatus
from contexts.shipping.service import CARRIER_JOBS, ShippingService
from domain.errors import DomainError, InvalidValue
from tests.support.aggregates import collected
from tests.support.participants import (
    assert_restored_from_snapshot,
    brought_to,
    check_transition,
    open_jobs,
)
from tests.unit.test_as_of_snapshots import IN_MEMORY

S = ShipmentStatus
Command = Callable[[Shipment], None]


def book(shipment: Shipment) -> None:
    shipment.record_booking("Parcelforce", "PF-1")


def fail(shipment: Shipment) -> None:
    shipment.record_failure("no carrier serves the address")


STEPS: dict[ShipmentStatus, list[Command]] = {
    S.REQUESTED: [],
    S.SCHEDULED: [book],
    S.FAILED: [fail],
    S.CANCELLING: [book, Shipment.request_cancellation],
    S.DISPATCHING: [book, Shipment.request_dispatch],
}
STEPS[S.CANCELLED] = [*STEPS[S.CANCELLING], Shipment.record_cancellation]
STEPS[S.DISPATCHED] = [*STEPS[S.DISPATCHING], Shipment.record_dispatch]
STEPS[S.DELIVERED] = [*STEPS[S.DISPATCHED], Shipment.deliver]


def new_shipment() -> Shipment:
    return Shipment.request(uuid4(), uuid4(), uuid4())


def shipment_in(status: ShipmentStatus) -> Shipment:
    """A fresh shipment brought to `status` through its public commands, events collected."""
    shipment = brought_to(new_shipment(), STEPS[status])
    assert shipment.status is status
    shipment.collect_events()
    return shipment


def test_a_request_records_the_order_and_the_user_at_the_given_id() -> None:
    shipment_id, order_id, user_id = uuid4(), uuid4(), uuid4()
    shipment = Shipment.request(shipment_id, order_id, user_id)

    assert (shipment.id, shipment.order_id, shipment.user_id) == (shipment_id, order_id, user_id)
    assert (shipment.status, shipment.pending_operation) == (S.REQUESTED, "schedule")
    assert (shipment.carrier, shipment.reference) == (None, None)
    [requested] = shipment.collect_events()
    assert isinstance(requested, Shipment.Requested)


def test_a_booking_names_the_carrier_and_its_reference() -> None:
    shipment = shipment_in(S.REQUESTED)
    shipment.record_booking("  Parcelforce ", "PF-1")
    assert (shipment.carrier, shipment.reference) == ("Parcelforce", "PF-1")
    assert shipment.provider_reference() == "PF-1"


TRANSITIONS: dict[str, tuple[Command, ShipmentStatus, ShipmentStatus, set[ShipmentStatus]]] = {
    # name: (command, the status it needs, the status it leads to, where it is a no-op)
    "record_booking": (book, S.REQUESTED, S.SCHEDULED, set()),
    "record_failure": (fail, S.REQUESTED, S.FAILED, set()),
    "request_dispatch": (
        Shipment.request_dispatch,
        S.SCHEDULED,
        S.DISPATCHING,
        {S.DISPATCHING, S.DISPATCHED, S.DELIVERED},
    ),
    "record_dispatch": (Shipment.record_dispatch, S.DISPATCHING, S.DISPATCHED, set()),
    "deliver": (Shipment.deliver, S.DISPATCHED, S.DELIVERED, {S.DELIVERED}),
    "request_cancellation": (
        Shipment.request_cancellation,
        S.SCHEDULED,
        S.CANCELLING,
        {S.CANCELLING, S.CANCELLED},
    ),
    "record_cancellation": (Shipment.record_cancellation, S.CANCELLING, S.CANCELLED, set()),
}
CASES = [
    (name, status)
    for name in TRANSITIONS
    for status in ShipmentStatus
    if (name, status) != ("request_cancellation", S.REQUESTED)  # below
]


def _cancelled_while_booking() -> Shipment:
    shipment = new_shipment()
    shipment.collect_events()
    shipment.request_cancellation()
    shipment.request_cancellation()
    assert [type(e).__name__ for e in shipment.collect_events()] == ["CancelWanted"]
    assert (shipment.status, shipment.cancel_wanted) == (S.REQUESTED, True)
    return shipment


def test_a_cancellation_while_the_booking_is_awaited_is_carried_out_once_booked() -> None:
    shipment = _cancelled_while_booking()
    shipment.record_booking("Parcelforce", "PF-1")
    assert [type(e).__name__ for e in shipment.collect_events()] == [
        "Scheduled",
        "CancelRequested",
    ]
    assert (shipment.status, shipment.pending_operation) == (S.CANCELLING, "cancel")
    shipment.record_cancellation()
    assert shipment.status is S.CANCELLED


def test_a_cancellation_while_the_booking_is_awaited_ends_with_a_refused_booking() -> None:
    shipment = _cancelled_while_booking()
    shipment.record_failure("no carrier")
    assert [type(e).__name__ for e in shipment.collect_events()] == ["Failed"]
    assert (shipment.status, shipment.pending_operation) == (S.FAILED, None)


@pytest.mark.parametrize(("name", "status"), CASES, ids=[f"{n}-in-{s}" for n, s in CASES])
def test_each_command_moves_one_status_is_a_no_op_once_done_and_refused_elsewhere(
    name: str, status: ShipmentStatus
) -> None:
    command, source, target, done = TRANSITIONS[name]
    check_transition(shipment_in(status), command, source, target, done)


@pytest.mark.parametrize("status", [S.DISPATCHING, S.DISPATCHED, S.DELIVERED])
def test_a_shipment_on_its_way_cannot_be_cancelled(status: ShipmentStatus) -> None:
    with pytest.raises(DomainError, match=r"; a shipment on its way cannot be called back$"):
        shipment_in(status).request_cancellation()


@pytest.mark.parametrize(
    ("carrier", "reference", "field"),
    [("", "PF-1", "carrier"), ("Parcelforce", " ", "reference"), ("c" * 101, "PF-1", "carrier")],
)
def test_a_booking_needs_a_carrier_and_a_reference(
    carrier: str, reference: str, field: str
) -> None:
    shipment = shipment_in(S.REQUESTED)
    with pytest.raises(InvalidValue, match=f"^{field} must be 1 to"):
        shipment.record_booking(carrier, reference)
    assert shipment.status is S.REQUESTED


def test_a_repeated_request_must_be_the_same_request() -> None:
    shipment = shipment_in(S.SCHEDULED)
    shipment.require_same_request(shipment.order_id, shipment.user_id)
    with pytest.raises(DomainError, match="a shipment's request cannot change"):
        shipment.require_same_request(shipment.order_id, uuid4())


def test_an_operation_that_needs_a_booking_says_so_without_one() -> None:
    with pytest.raises(ValueError, match="is requested without a provider reference"):
        shipment_in(S.REQUESTED).provider_reference()


@pytest.mark.parametrize("status", list(ShipmentStatus))
def test_the_open_jobs_of_a_shipment_are_exactly_its_pending_operation(
    status: ShipmentStatus,
) -> None:
    shipment = brought_to(new_shipment(), STEPS[status])
    table = open_jobs(ShippingService.operation_jobs.changes, collected(shipment))

    operation = shipment.pending_operation
    assert set(table) == ({(CARRIER_JOBS, f"{shipment.id}:{operation}")} if operation else set())
    awaited = {S.REQUESTED: "schedule", S.DISPATCHING: "dispatch", S.CANCELLING: "cancel"}
    assert operation == awaited.get(status)


@pytest.mark.parametrize("status", [S.REQUESTED, S.FAILED, S.DELIVERED])
def test_a_shipment_comes_back_from_its_snapshot_exactly(status: ShipmentStatus) -> None:
    assert_restored_from_snapshot(ShippingService(env=IN_MEMORY), shipment_in(status))
