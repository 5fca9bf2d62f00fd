"""A hypothesis state machine feeding one OrderFulfilment random inputs in random order, with
duplicates, stale deadlines, participants' refusals, operators' retry, skip and resolve, and
restarts, and checking the saga invariant (DESIGN.md, "Sagas end"): never two captures; a
cancelled saga voided or refunded every authorization and capture it saw (or was told someone
else did); a completed one shipped after exactly one capture; never waiting on anything without
a deadline."""

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from contexts.fulfilment import events
from contexts.fulfilment.definition import STEPS, FulfilmentStatus, StepState
from contexts.fulfilment.domain import OrderFulfilment
from tests.unit.test_fulfilment import Run, replayed

TEXT = st.sampled_from(["", "x", "no carrier", "insufficient funds"])
ENDED = (FulfilmentStatus.COMPLETED, FulfilmentStatus.RESOLVED)
CONFIRMATIONS = {
    "authorize": ("payment_authorized", "AUTH-1"),
    "schedule": ("shipment_scheduled", "DHL", "TRACK-1"),
    "capture": ("payment_captured",),
    "mark_paid": ("order_paid",),
    "dispatch": ("shipment_dispatched",),
    "mark_shipped": ("order_shipped",),
    "cancel_shipment": ("shipment_cancelled",),
    "void_payment": ("payment_voided",),
    "refund_payment": ("payment_refunded",),
    "cancel_order": ("order_cancelled", "by the saga"),
}
WAITING = (FulfilmentStatus.RUNNING, FulfilmentStatus.COMPENSATING, FulfilmentStatus.CANCELLED)


class FulfilmentMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.run = Run()

    @property
    def saga(self) -> OrderFulfilment:
        return self.run.saga

    def feed(self, name: str, *args: Any) -> None:
        ended = self.saga.status in ENDED
        new = self.run.feed(name, *args)
        assert not (ended and new), f"{name} changed an ended saga"

    # participants' replies, in any order, any number of times

    @rule(reference=TEXT)
    def payment_authorized(self, reference: str) -> None:
        self.feed("payment_authorized", reference)

    @rule(reason=TEXT)
    def payment_declined(self, reason: str) -> None:
        self.feed("payment_declined", reason)

    @rule(carrier=TEXT, reference=TEXT)
    def shipment_scheduled(self, carrier: str, reference: str) -> None:
        self.feed("shipment_scheduled", carrier, reference)

    @rule(reason=TEXT)
    def shipment_failed(self, reason: str) -> None:
        self.feed("shipment_failed", reason)

    @rule(
        name=st.sampled_from(
            [
                "payment_captured",
                "order_paid",
                "shipment_dispatched",
                "order_shipped",
                "payment_voided",
                "payment_refunded",
                "shipment_cancelled",
                "retry",
            ]
        )
    )
    def reply(self, name: str) -> None:
        self.feed(name)

    @rule(times=st.integers(1, 6))
    def participants_do_as_asked(self, times: int) -> None:
        """The step waited for is confirmed, `times` times in a row (or until nothing is waited
        for): without this, random replies would rarely get a saga far."""
        for _ in range(times):
            if self.saga.step is None:
                return
            name, *args = CONFIRMATIONS[self.saga.step]
            self.feed(name, *args)

    @rule(reason=TEXT)
    def order_cancelled(self, reason: str) -> None:
        self.feed("order_cancelled", reason)

    @rule(note=st.sampled_from(["fixed by hand", "refunded manually"]))
    def resolve(self, note: str) -> None:
        self.feed("resolve", note)

    @rule(note=st.sampled_from(["handed back at the depot", "voided at the console"]))
    def skip(self, note: str) -> None:
        parked_on = self.saga.step if self.saga.status is FulfilmentStatus.PARKED else None
        new = self.run.feed("skip", note)
        if parked_on is None:
            assert new == [], "only a parked saga is skipped on"
        else:
            assert self.saga.records[parked_on]["state"] == StepState.SKIPPED

    # deadlines: the current one, stale ones, made-up ones

    @precondition(lambda self: bool(self.run.deadlines))
    @rule(data=st.data())
    def a_deadline_passes(self, data: st.DataObject) -> None:
        deadline = data.draw(st.sampled_from(self.run.deadlines))
        self.run.armed.pop(deadline.deadline_id, None)
        self.saga.timed_out(deadline.step, deadline.deadline_id)
        self.run.take()

    @rule(step=st.sampled_from(sorted(STEPS)), generation=st.integers(0, 2))
    def a_made_up_deadline_passes(self, step: str, generation: int) -> None:
        self.saga.timed_out(step, f"{self.saga.id}:{step}:{generation}")
        assert self.run.take() == []

    # refusals: of the command waited for, of stale and made-up ones

    @rule(data=st.data(), generation=st.integers(0, 2), reason=TEXT)
    def a_participant_refuses(self, data: st.DataObject, generation: int, reason: str) -> None:
        waited_for = [self.saga.step] if self.saga.step else []
        step = data.draw(st.sampled_from(waited_for + sorted(STEPS)))
        self.feed("command_refused", step, generation, reason)

    @rule()
    def restart(self) -> None:
        """The process dies and reloads the saga from its events."""
        self.run.saga = replayed(self.run.events)

    # invariants

    @invariant()
    def status_is_one_of_the_allowed(self) -> None:
        assert self.saga.status in set(FulfilmentStatus)

    @invariant()
    def capture_is_asked_for_at_most_once(self) -> None:
        assert self.run.issued.count("capture") <= 1

    @invariant()
    def every_command_and_deadline_is_new(self) -> None:
        keys = [command.key for command in self.run.commands]
        deadline_ids = [deadline.deadline_id for deadline in self.run.deadlines]
        assert len(set(keys)) == len(keys)
        assert len(set(deadline_ids)) == len(deadline_ids)

    @invariant()
    def a_cancelled_saga_returned_every_payment_it_saw(self) -> None:
        if self.saga.status is not FulfilmentStatus.CANCELLED:
            return
        seen, returned = self.seen(), set(self.run.issued) | set(self.undone_elsewhere())
        if "authorize" in seen:
            assert {"void_payment", "refund_payment"} & returned
        if "capture" in seen:
            assert "refund_payment" in returned

    @invariant()
    def a_completed_saga_shipped_after_one_capture(self) -> None:
        if self.saga.status is not FulfilmentStatus.COMPLETED:
            return
        assert self.seen().count("capture") == 1
        assert self.run.issued.count("capture") == 1
        assert "mark_shipped" in self.seen() + self.done_by_hand()
        assert self.saga.order == "shipped"
        assert not {"void_payment", "refund_payment", "cancel_order"} & set(self.run.issued)

    @invariant()
    def it_never_waits_without_a_deadline(self) -> None:
        """Never stuck silently: a step waited for has its one armed deadline, unless it is an
        order's (retried until done); a parked saga is listed, with the step it is parked on."""
        armed = [deadline.step for deadline in self.run.armed.values()]
        step = self.saga.step
        if self.saga.status in WAITING and step is not None and STEPS[step].timeout:
            assert armed == [step]
        else:
            assert armed == []
        if self.saga.status in (FulfilmentStatus.RUNNING, FulfilmentStatus.COMPENSATING):
            assert step is not None
        if self.saga.status is FulfilmentStatus.PARKED:
            assert step is not None
            assert self.saga.attention

    @invariant()
    def it_is_the_fold_of_its_events(self) -> None:
        assert vars(replayed(self.run.events)) == vars(self.saga)

    def seen(self) -> list[str]:
        return self.steps_of(OrderFulfilment.StepSucceeded)

    def done_by_hand(self) -> list[str]:
        return self.steps_of(OrderFulfilment.StepDoneByHand)

    def undone_elsewhere(self) -> list[str]:
        """What someone other than the saga voided, refunded or cancelled, as it was told."""
        return self.steps_of(OrderFulfilment.UndoneElsewhere)

    def steps_of(
        self,
        event_class: type[events.StepSucceeded | events.StepDoneByHand | events.UndoneElsewhere],
    ) -> list[str]:
        return [event.step for event in self.run.events if isinstance(event, event_class)]


FulfilmentMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
test_the_saga_invariant_holds_under_random_inputs = FulfilmentMachine.TestCase
