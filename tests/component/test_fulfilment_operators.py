"""An operator's hand in an order's fulfilment, through the whole system in one process, stepped
by hand (`FaultSchedule` of test_fulfilment_faults: the write API, the saga's intake, every job
poller, the provider simulators over HTTP): a payment voided by hand while the saga runs is not
waited for when the saga compensates, and a parked saga's refused step can be skipped."""

from uuid import UUID

from contexts.fulfilment import ids
from tests.component.test_fulfilment_faults import FaultSchedule
from tests.support.simulated_network import CARRIER


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
            0,
            ("voided",),
        )
    finally:
        machine.close()
