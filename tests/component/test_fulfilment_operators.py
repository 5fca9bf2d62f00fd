"""An operator's hand in an order's fulfilment, through the whole system in one process, stepped
by hand (`FaultSchedule` of test_fulfilment_faults: the write API, the saga's intake, every job
poller, the provider simulators over HTTP): a payment voided by hand while the saga runs is not
waited for when the saga compensates, and a parked saga's refused step can be skipped."""

from decimal import Decimal
from uuid import UUID

from contexts.fulfilment import ids
from tests.component.test_fulfilment_faults import FaultSchedule
from tests.support.api import assert_problem
from tests.support.auth import IDENTITY
from tests.support.fulfilment_outcomes import outcome
from tests.support.simulated_network import CARRIER, PAYMENT_PROVIDER

NOTE = "the parcel was handed back at the depot"


def payment_status(machine: FaultSchedule, order: UUID) -> str:
    status: str = machine.client.get(f"/payments/{ids.payment_id(order)}").json()["status"]
    return status


def test_a_payment_voided_by_hand_while_the_saga_runs_is_not_waited_for() -> None:
    """The operator voids the authorized payment while the carrier is down; the carrier then
    refuses the shipment, and the saga cancels the order without asking for a void payments
    would answer with nothing new (it used to park at the void's deadline)."""
    machine = FaultSchedule()
    try:
        machine.network.control(CARRIER, outage=True)
        machine.place_orders(["20.00"])
        (order,) = machine.orders
        machine.run_until_the_saga_waits_for(order, "schedule")
        void = machine.client.post(f"/payments/{ids.payment_id(order)}/void")
        assert void.status_code == 200, void.text
        machine.system.run_until_idle()
        assert payment_status(machine, order) == "voided"
        assert machine.saga(order)["payment"] == "voided"

        machine.network.control(CARRIER, refuse_rate=1.0)
        machine.system.settle()

        saga = machine.saga(order)
        assert (saga["status"], saga["attention"]) == ("cancelled", None), saga
        assert "void_payment" not in [step["name"] for step in saga["steps"]]
        (ended,) = machine.every_order_ended()
        assert (ended.saga, ended.order, ended.net_charge, ended.authorizations) == (
            "cancelled",
            "cancelled",
            Decimal(0),
            ("voided",),
        )
    finally:
        machine.close()


def test_a_refused_shipment_cancellation_skipped_by_an_operator_refunds_the_payment() -> None:
    """An operator cancels the order while the carrier holds the dispatch: shipping refuses to
    cancel the shipment and the saga parks, the payment captured. The operator skips that step
    (over the write API, with a note), and the saga refunds the payment and ends cancelled."""
    machine = FaultSchedule()
    try:
        machine.place_orders(["20.00"])
        (order,) = machine.orders
        machine.run_until_the_saga_waits_for(order, "dispatch")
        machine.network.control(CARRIER, outage=True)
        machine.system.run_until_idle()
        cancel = {"reason": "customer called"}
        assert machine.client.post(f"/orders/{order}/cancel", json=cancel).status_code == 200
        machine.system.run_until_idle()
        saga = machine.saga(order)
        assert (saga["status"], saga["step"]) == ("parked", "cancel_shipment")
        assert payment_status(machine, order) == "captured"

        skip = f"/fulfilments/{order}/skip"
        owner = IDENTITY.user(machine.user)
        assert_problem(machine.client.post(skip, json={"note": NOTE}, headers=owner), 403)
        assert_problem(machine.client.post(skip, json={"note": " "}), 422, "note")
        assert machine.client.post(skip, json={"note": NOTE}).status_code == 200
        machine.system.run_until_idle()

        saga = machine.saga(order)
        assert (saga["status"], saga["attention"], saga["reason"]) == (
            "cancelled",
            None,
            "customer called",
        )
        states = {
            step["name"]: (step["state"], step["detail"].get("note")) for step in saga["steps"]
        }
        assert states["cancel_shipment"] == ("skipped", NOTE)
        assert states["refund_payment"] == ("done", None)
        assert payment_status(machine, order) == "refunded"
        ended = outcome(
            order,
            machine.orders[order],
            ("cancelled", "cancelled"),
            machine.network.ledger(PAYMENT_PROVIDER),
            machine.network.ledger(CARRIER),
        )
        assert (ended.captures, ended.net_charge, ended.authorizations) == (
            1,
            Decimal(0),
            ("refunded",),
        )
        assert_problem(machine.client.post(skip, json={"note": NOTE}), 409, "cancelled, not parked")
    finally:
        machine.close()
