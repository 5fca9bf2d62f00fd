"""Sagas end under random fault schedules (issue 9, DESIGN.md invariant 8), at system level.

A hypothesis state machine runs the whole system in one process on SQLite, stepped by hand
(`tests.support.stepped_system`), against the provider simulators over HTTP in process
(`tests.support.simulated_network`), and interleaves: orders placed; faults set on either
simulator (outage, error rate, refusals, answers lost after the operation was performed) and
healed; the clock moved (past backoffs, breaker recoveries and deadlines); each part of the
process run a step (the saga's intake of each context, each kind of job); the process killed and
rebuilt from its stores, also at chosen points (a job claimed, a job handled but not removed, a
provider call performed but not answered, a saga input taken but not checkpointed); an
operator's retry of a parked saga.

At the end every fault is healed and the system run until no job is left. Then every order has
ended exactly one of: shipped with exactly one capture, cancelled with nothing charged, or
parked and listed by the read API, as the simulators' own ledgers tell
(`tests.support.fulfilment_outcomes`); no saga is left running or compensating.
"""

import os
import tempfile
from contextlib import ExitStack
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from contexts.fulfilment import ids
from contexts.fulfilment.service import COMMAND_JOB, FOLLOWED
from contexts.payments.service import PAYMENT_PROVIDER_JOBS
from contexts.settings import Settings
from contexts.shipping.service import CARRIER_JOBS
from embedded.app import create_app as create_embedded_app
from eventlog.jobs import LEASE, ManualClock
from read_api.params import MAX_LIMIT
from tests.support.api import add_line, create_order, register
from tests.support.auth import OPERATOR
from tests.support.fulfilment_outcomes import Outcome, broken_promises, outcome
from tests.support.simulated_network import (
    CARRIER,
    PAYMENT_PROVIDER,
    base_url,
    simulated_network,
)
from tests.support.stepped_system import (
    JOB_KINDS,
    PARTS,
    QUIET,
    STEP_TIME,
    SteppedSystem,
    the_process_clock,
)

PRICES = st.sampled_from(["20.00", "7.50", "10.13"])  # the simulator declines cents of 13
ORDERS = st.lists(PRICES, min_size=1, max_size=3)
HOSTS = st.sampled_from([PAYMENT_PROVIDER, CARRIER])
JOBS_OF = {PAYMENT_PROVIDER: PAYMENT_PROVIDER_JOBS, CARRIER: CARRIER_JOBS}
REFUSALS = {PAYMENT_PROVIDER: {"decline_rate": 1.0}, CARRIER: {"refuse_rate": 1.0}}
FAULTS = st.sampled_from(["outage", "errors", "refusals", "lost answers"])
MEMORY_DISK = Path("/dev/shm")
"""Where the stores go if there is one: the test kills processes, not machines, and a commit's
fsync would take most of its time."""
KILL_POINTS = st.one_of(
    st.just(("between steps", "")),
    st.tuples(st.sampled_from(["job claimed", "job handled"]), st.sampled_from(JOB_KINDS)),
    st.tuples(st.just("provider call"), HOSTS),
    st.tuples(st.just("saga intake"), st.sampled_from(FOLLOWED)),
)
"""Where the process dies: a job claimed but not handled, or handled (its outcome committed) but
not removed; a provider call performed but not answered; a saga input taken in but not
checkpointed."""
CLOCK_MOVES = st.sampled_from([1, 20, 45, 90, 600])
"""Seconds: within a backoff, past the breakers' recovery (10 s), past one deadline or several
(30 s to authorize, 60 s to schedule, capture or compensate, 120 s to dispatch)."""


class FaultSchedule(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._resources = ExitStack()
        scratch = tempfile.TemporaryDirectory(dir=MEMORY_DISK if MEMORY_DISK.is_dir() else None)
        data_dir = Path(self._resources.enter_context(scratch))
        self.clock = ManualClock()
        self._resources.enter_context(the_process_clock(self.clock))
        self.network = self._resources.enter_context(simulated_network())
        self.settings = Settings(
            data_dir=data_dir / "var",
            payment_provider_url=base_url(PAYMENT_PROVIDER),
            carrier_url=base_url(CARRIER),
            provider_retries=0,  # the job poller's backoff is the retry, on the test's clock
            breaker_failure_threshold=3,
        )
        self.system = SteppedSystem(self.settings, self.network, self.clock)
        self._resources.callback(self.system.stop)
        self.user = register(self.system.client)
        self.orders: dict[UUID, Decimal] = {}

    @property
    def client(self) -> TestClient:
        return self.system.client

    @initialize(prices=ORDERS)
    def place_the_first_orders(self, prices: list[str]) -> None:
        self.place_orders(prices)

    @rule(prices=ORDERS)
    def place_orders(self, prices: list[str]) -> None:
        for price in prices:
            order = create_order(self.client, self.user)
            add_line(self.client, order, "A", 1, price)
            assert self.client.post(f"/orders/{order}/place").status_code == 200
            self.orders[UUID(order)] = Decimal(price)

    @rule(host=HOSTS, fault=FAULTS)
    def set_a_fault(self, host: str, fault: str) -> None:
        if fault == "lost answers":
            self.network.losing_answers.add(host)
        elif fault == "outage":
            self.network.control(host, outage=True)
        elif fault == "errors":
            self.network.control(host, error_rate=0.5)
        else:
            self.network.control(host, **REFUSALS[host])

    @rule(host=HOSTS)
    def heal(self, host: str) -> None:
        self.network.heal(host)

    @rule(seconds=CLOCK_MOVES)
    def move_the_clock(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    @rule(part=st.sampled_from(PARTS), times=st.integers(1, 3))
    def run_a_part(self, part: str, times: int) -> None:
        for _ in range(times):
            self.system.step(part)

    @rule()
    def run_everything_due(self) -> None:
        self.system.run_until_idle()

    @rule(jumps=st.integers(1, 8))
    def let_time_pass(self, jumps: int) -> None:
        """Run everything due and move the clock to the next due job, a few times over, with
        the faults as they are: deadlines pass, compensations run, sagas park."""
        self.system.let_time_pass(jumps)

    @rule(point=KILL_POINTS)
    def kill_the_process(self, point: tuple[str, str]) -> None:
        """Kill the process at a point (if nothing is there to kill it in, between steps) and
        start it again from its stores."""
        where, which = point
        killed = {
            "job claimed": lambda: self.system.crash_in_job(which, after_handling=False),
            "job handled": lambda: self.system.crash_in_job(which, after_handling=True),
            "provider call": lambda: self.system.crash_in_provider_call(which, JOBS_OF[which]),
            "saga intake": lambda: self.system.crash_in_saga_intake(which),
        }.get(where, lambda: False)()
        if not killed:
            self.system.crash()

    @rule(pick=st.integers(min_value=0))
    def retry_a_parked_saga(self, pick: int) -> None:
        if not self.orders:
            return
        order = sorted(self.orders)[pick % len(self.orders)]
        response = self.client.post(f"/fulfilments/{order}/retry")
        assert response.status_code in (200, 404, 409), response.text  # 404: not started yet

    def teardown(self) -> None:
        try:
            for ended in self.every_order_ended():
                event(f"an order ended {ended.saga}")
        finally:
            self.close()

    def close(self) -> None:
        self._resources.close()

    def every_order_ended(self) -> list[Outcome]:
        """Heal every fault, run until no job is left, and check how every order ended."""
        for host in (PAYMENT_PROVIDER, CARRIER):
            self.network.heal(host)
        self.system.settle()
        payments = self.network.ledger(PAYMENT_PROVIDER)
        carrier = self.network.ledger(CARRIER)
        outcomes = [
            outcome(order, amount, self._statuses(order), payments, carrier)
            for order, amount in self.orders.items()
        ]
        assert [broken for ended in outcomes for broken in broken_promises(ended)] == []
        parked = {str(ended.order_id) for ended in outcomes if ended.saga == "parked"}
        if parked:
            assert self._listed_as_parked() == parked
        return outcomes

    def run_until_the_saga_waits_for(self, order: UUID, step: str) -> None:
        """Step every part in turn, with no fault set, until the order's saga asks for `step`."""
        for part in PARTS * 20:
            if self.saga(order).get("step") == step:
                return
            self.system.step(part)
        raise AssertionError(f"the saga of {order} never asked for {step}: {self.saga(order)}")

    def saga(self, order: UUID) -> dict[str, Any]:
        """The order's saga as the write API shows it ({} if it has not started)."""
        response = self.client.get(f"/fulfilments/{order}")
        return response.json() if response.status_code == 200 else {}

    def _statuses(self, order: UUID) -> tuple[str, str]:
        saga_status = self.saga(order).get("status", "missing")
        return saga_status, self.client.get(f"/orders/{order}").json()["status"]

    def _listed_as_parked(self) -> set[str]:
        """The orders the read API lists as parked, once its read models reflect every saga."""
        head = self.system.fulfilment.recorder.max_notification_id()
        self.system.stop()
        reading = create_embedded_app(self.settings, contexts=QUIET)
        with TestClient(reading, headers=OPERATOR) as reader:
            response = reader.get(
                "/read/fulfilments",
                params={
                    "status": "parked",
                    "position": f"fulfilment:{head}",
                    "wait": 10,
                    "limit": MAX_LIMIT,
                },
            )
        assert response.status_code == 200, response.text
        listed: list[dict[str, Any]] = response.json()["items"]
        assert response.json()["next_cursor"] is None
        return {item["order_id"] for item in listed}


FaultSchedule.TestCase.settings = settings(
    max_examples=int(os.environ.get("STRATA_FAULT_SCHEDULES", "20")),
    stateful_step_count=30,
    deadline=None,
)
test_fulfilment_under_fault_schedules = FaultSchedule.TestCase


def test_a_dispatch_answered_after_its_deadline_parks_the_saga_for_good() -> None:
    """The schedule that leaves a saga parked once everything is healed: the carrier dispatches
    but its answer is lost, the dispatch's deadline passes, shipping refuses to cancel a
    shipment being dispatched, and the dispatch confirmed at last does not resume the saga. The
    read API lists it (`every_order_ended`)."""
    machine = FaultSchedule()
    try:
        machine.place_orders(["20.00"])
        (order,) = machine.orders
        machine.run_until_the_saga_waits_for(order, "dispatch")
        machine.network.losing_answers.add(CARRIER)
        machine.system.let_time_pass(20)
        assert machine.saga(order)["status"] == "parked"

        (ended,) = machine.every_order_ended()
        assert (ended.saga, ended.order, ended.captures, ended.bookings) == (
            "parked",
            "paid",
            1,
            ("dispatched",),
        )
    finally:
        machine.close()


def test_an_order_cancelled_while_its_shipment_is_dispatching_parks_at_once_on_the_refusal() -> (
    None
):
    """An operator cancels the order while the carrier holds the dispatch: shipping refuses to
    cancel a shipment being dispatched, and the saga parks on that refusal at once, in
    shipping's words, not a compensation deadline later. The process dies after the refusal is
    recorded but before the command's job is removed: run again, the job changes nothing."""
    machine = FaultSchedule()
    try:
        machine.place_orders(["20.00"])
        (order,) = machine.orders
        machine.run_until_the_saga_waits_for(order, "dispatch")
        machine.network.control(CARRIER, outage=True)
        machine.system.run_until_idle()
        shipment = f"/shipments/{ids.shipment_id(order)}"
        assert machine.client.get(shipment).json()["status"] == "dispatching"

        cancel = {"reason": "customer called"}
        assert machine.client.post(f"/orders/{order}/cancel", json=cancel).status_code == 200
        machine.system.step("saga<-orders")
        assert machine.saga(order)["step"] == "cancel_shipment"
        machine.clock.advance(STEP_TIME)  # its command is due just after the saga's events
        assert machine.system.crash_in_job(COMMAND_JOB, after_handling=True)
        machine.clock.advance(LEASE + timedelta(seconds=1))  # the dead process's claim ends
        machine.system.run_until_idle()

        saga = machine.saga(order)
        assert (saga["status"], saga["step"], saga["reason"]) == (
            "parked",
            "cancel_shipment",
            "customer called",
        )
        assert saga["attention"].startswith(
            "shipping refused cancel: cannot cancel: the shipment is dispatching"
        )
        history = machine.system.fulfilment.events.get(ids.saga_id(order))
        assert [type(event).__name__ for event in history][-2:] == ["StepRefused", "Parked"]
        payment = machine.client.get(f"/payments/{ids.payment_id(order)}").json()
        assert payment["status"] == "captured", "for a person to refund or ship"

        (ended,) = machine.every_order_ended()
        assert (ended.saga, ended.order, ended.captures, ended.bookings) == (
            "parked",
            "cancelled",
            1,
            ("dispatched",),
        )
    finally:
        machine.close()
