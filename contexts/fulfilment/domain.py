"""The OrderFulfilment saga: a pure, event-sourced state machine over one placed order.

The process that runs it (intake of the participants' events, jobs, dispatcher) lives elsewhere;
this module only decides. Each input is a method named after what happened in a participant;
it records events, and `outbox_after(events)` turns those events into the commands to send, the
deadlines to set and the deadlines to drop (`outbox`: a function of the events and of the saga's
immutable facts, so a redelivered input yields identical commands with identical keys).

The rules it follows (steps, compensation, operators' `pay`/`ship`, late replies, parking) are
written out in docs/fulfilment.md.
"""

from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from contexts.fulfilment import events, ids, outbox
from contexts.fulfilment.definition import (
    AUTHORIZE,
    CANCEL_ORDER,
    CANCEL_SHIPMENT,
    CAPTURE,
    DEFINITION_VERSION,
    DISPATCH,
    MARK_PAID,
    MARK_SHIPPED,
    NEXT_STEP,
    PAYMENT_UNDOING,
    REFUND_PAYMENT,
    SCHEDULE,
    STEPS,
    VOID_PAYMENT,
    FulfilmentPolicy,
    FulfilmentStatus,
    Outbox,
    Step,
    StepRecord,
    StepState,
    deadline_id,
    reason_text,
    undoing_due,
)
from domain.aggregate import EventSourcedAggregate
from domain.orders.order import MAX_REASON_LENGTH
from domain.values import bounded_text, currency_code, money_amount

DEFAULT_POLICY = FulfilmentPolicy()
ORDER_PROGRESS = ("placed", MARK_PAID.succeeded, MARK_SHIPPED.succeeded)
"""The order's states the saga moves it through, in order."""
DONE_BY_HAND = (MARK_PAID, MARK_SHIPPED)
"""The steps an operator may do on the order before the saga asks for them."""
Status = FulfilmentStatus


class OrderFulfilment(EventSourcedAggregate):
    """The fulfilment of one order, identified by `ids.saga_id(order_id)`."""

    # Its events (see `events`), named as its own.
    Started = events.Started
    StepRequested = events.StepRequested
    StepSucceeded = events.StepSucceeded
    StepFailed = events.StepFailed
    StepAbandoned = events.StepAbandoned
    StepTimedOut = events.StepTimedOut
    StepRefused = events.StepRefused
    OrderMarkedByHand = events.OrderMarkedByHand
    StepDoneByHand = events.StepDoneByHand
    UndoneElsewhere = events.UndoneElsewhere
    OrderCancelled = events.OrderCancelled
    CompensationStarted = events.CompensationStarted
    PlanRevised = events.PlanRevised
    Completed = events.Completed
    Cancelled = events.Cancelled
    Parked = events.Parked
    Retried = events.Retried
    StepSkipped = events.StepSkipped
    Resolved = events.Resolved

    def __init__(
        self,
        order_id: UUID,
        user_id: UUID,
        amount: Decimal,
        currency: str,
        definition_version: int,
    ) -> None:
        self.order_id = order_id
        self.user_id = user_id
        self.amount = amount
        self.currency = currency
        self.definition_version = definition_version
        self.status = Status.RUNNING
        self.step: str | None = None
        """The step waited for (forward or compensation); for a parked saga, the one parked on."""
        self.generation = 0
        """Raised by each retry, so a re-issued command carries a new key."""
        self.plan: list[str] = []
        """The compensation steps still to ask for, in order, after the current one."""
        self.payment = "none"
        self.shipment = "none"
        self.order = "placed"
        self.reason: str | None = None
        """Why the saga compensates (and, when it ends cancelled, why it was cancelled)."""
        self.attention: str | None = None
        self.note: str | None = None
        self.records: dict[str, dict[str, Any]] = {}

    @classmethod
    def start(
        cls,
        order_id: UUID,
        user_id: UUID,
        amount: Decimal,
        currency: str,
        definition_version: int = DEFINITION_VERSION,
    ) -> "OrderFulfilment":
        """Begin fulfilling a just-placed order: ask for the payment's authorization."""
        saga = cls._create(
            cls.Started,
            id=ids.saga_id(order_id),
            order_id=order_id,
            user_id=user_id,
            amount=money_amount(amount, field="amount"),
            currency=currency_code(currency),
            definition_version=definition_version,
        )
        saga._request(AUTHORIZE)
        return saga

    def restore_types(self) -> None:
        self.status = Status(self.status)  # a StrEnum is stored as its plain string

    @property
    def steps(self) -> list[StepRecord]:
        """Each step asked for so far, in the order first asked, with its latest state."""
        return [
            StepRecord(name, StepState(entry["state"]), entry["at"], dict(entry["detail"]))
            for name, entry in self.records.items()
        ]

    # inputs: what happened in a participant

    def payment_authorized(self, reference: str) -> None:
        if self._confirm(AUTHORIZE, reference=reference):
            return
        if self.payment == AUTHORIZE.requested and self.status is not Status.RESOLVED:
            self._record_late(AUTHORIZE, reference=reference)

    def payment_declined(self, reason: str) -> None:
        self._refuse(AUTHORIZE, reason, cause="payment declined")

    def shipment_scheduled(self, carrier: str, reference: str) -> None:
        self._confirm(SCHEDULE, carrier=carrier, reference=reference)

    def shipment_failed(self, reason: str) -> None:
        if self._refuse(SCHEDULE, reason, cause="shipment failed"):
            return
        # Failed after its cancellation was asked for: there is nothing left to cancel.
        self._confirm(CANCEL_SHIPMENT, outcome=f"shipment failed: {reason}")

    def payment_captured(self) -> None:
        if self._confirm(CAPTURE):
            return
        asked = CAPTURE.name in self.records and self.status is not Status.RESOLVED
        if asked and self.payment not in (CAPTURE.succeeded, REFUND_PAYMENT.succeeded):
            self._record_late(CAPTURE)

    def order_paid(self) -> None:
        if not self._confirm(MARK_PAID):
            self._remember_done_by_hand(MARK_PAID)

    def shipment_dispatched(self) -> None:
        self._confirm(DISPATCH)

    def order_shipped(self) -> None:
        if not self._confirm(MARK_SHIPPED):
            self._remember_done_by_hand(MARK_SHIPPED)

    def payment_voided(self) -> None:
        if not self._confirm(VOID_PAYMENT):
            self._remember_undone(VOID_PAYMENT)

    def payment_refunded(self) -> None:
        if not self._confirm(REFUND_PAYMENT):
            self._remember_undone(REFUND_PAYMENT)

    def shipment_cancelled(self) -> None:
        if not self._confirm(CANCEL_SHIPMENT):
            self._remember_undone(CANCEL_SHIPMENT)

    def order_cancelled(self, reason: str) -> None:
        """The order was cancelled: by this saga's own compensation, or by an operator."""
        if self._confirm(CANCEL_ORDER, reason=reason):
            return
        if self.order == CANCEL_ORDER.succeeded or self.status not in (
            Status.RUNNING,
            Status.COMPENSATING,
            Status.PARKED,
        ):
            return
        reason = reason_text(reason)
        running = self.status is Status.RUNNING
        self.trigger_event(self.OrderCancelled, reason=reason)
        if running:
            if self.step is not None:
                self._abandon(STEPS[self.step], "the order was cancelled")
            self._compensate(reason)

    def timed_out(self, step: str, deadline_id: str) -> None:
        spec = STEPS.get(step)
        if spec is None or spec.timeout is None or not self._waits_for(spec):
            return
        if deadline_id != self._deadline_id(spec):
            return
        generation = self._generation_of(spec)
        self.trigger_event(
            self.StepTimedOut, step=step, generation=generation, deadline_id=deadline_id
        )
        self._give_up(spec, f"{step} timed out", f"{step} was not confirmed before its deadline")

    def command_refused(self, step: str, generation: int, reason: str) -> None:
        """The participant refused the command of `step` at `generation`: decided at once, as
        the step's deadline would decide it. A step without a deadline (the order's, retried
        until done) is decided by the order's own events, which come after such a refusal (the
        order was paid, shipped or cancelled by hand meanwhile): its refusal is only recorded."""
        spec = STEPS.get(step)
        if spec is None or not self._waits_for(spec) or generation != self._generation_of(spec):
            return
        reason = reason_text(reason)
        self.trigger_event(self.StepRefused, step=step, generation=generation, reason=reason)
        if spec.timeout is not None:
            why = reason_text(f"{spec.target} refused {spec.action}: {reason}")
            self._give_up(spec, why, why)

    # inputs: an operator's, for a parked saga

    def retry(self) -> None:
        """Ask again for the step the saga is parked on, with a new key and a new deadline."""
        if self.status is not Status.PARKED or self.step is None:
            return
        self.trigger_event(self.Retried, generation=self.generation + 1)
        self._request(STEPS[self.step])

    def skip(self, note: str) -> None:
        """Go on past the step a parked saga is parked on (a compensation: a saga parks on no
        other) with the rest of its compensation: an operator saw to it by hand, or judged it
        not to be done, and says which in `note`."""
        note = bounded_text(note, field="note", max_length=MAX_REASON_LENGTH)
        if self.status is not Status.PARKED or self.step is None:
            return
        self.trigger_event(self.StepSkipped, step=self.step, note=note)
        self._advance(None)

    def resolve(self, note: str) -> None:
        """End a parked saga: an operator has put things right by hand."""
        note = bounded_text(note, field="note", max_length=MAX_REASON_LENGTH)
        if self.status is not Status.PARKED:
            return
        self.trigger_event(self.Resolved, note=note)

    # outputs

    def outbox_after(
        self, events: Iterable[Aggregate.Event], policy: FulfilmentPolicy = DEFAULT_POLICY
    ) -> Outbox:
        """The commands to send, deadlines to set and deadlines to drop after `events`."""
        return outbox.outbox_after(self, events, policy)

    # decisions

    def _confirm(self, step: Step, **detail: str) -> bool:
        """Record the confirmation of the step waited for, and move on; False if not waited for."""
        if self.step != step.name or self.status not in (
            Status.RUNNING,
            Status.COMPENSATING,
            Status.PARKED,
            Status.CANCELLED,
        ):
            return False
        generation = self._generation_of(step)
        self.trigger_event(
            self.StepSucceeded, step=step.name, generation=generation, detail=detail, late=False
        )
        self._advance(step)
        return True

    def _waits_for(self, step: Step) -> bool:
        """Whether the saga waits for the confirmation of `step`: asked for, and neither timed
        out nor refused since (a saga parked on it waits for a person)."""
        return self.step == step.name and self.records[step.name]["state"] == StepState.PENDING

    def _give_up(self, step: Step, why: str, attention: str) -> None:
        """Stop waiting for `step`: a running saga compensates `why`; one compensating (or
        undoing a late reply) parks on it for a person."""
        if self.status is Status.RUNNING:
            self._compensate(why)
        else:
            self.trigger_event(self.Parked, step=step.name, reason=attention)

    def _refuse(self, step: Step, reason: str, *, cause: str) -> bool:
        if self.status is not Status.RUNNING or self.step != step.name:
            return False
        generation = self._generation_of(step)
        self.trigger_event(self.StepFailed, step=step.name, generation=generation, reason=reason)
        self._compensate(reason_text(f"{cause}: {reason}"))
        return True

    def _advance(self, done: Step | None) -> None:
        """Ask for what comes after `done`: the next step, the next compensation, or the end."""
        if self.status is Status.RUNNING and done is not None:
            following = NEXT_STEP.get(done.name)
            if following is None:
                self.trigger_event(self.Completed)
            else:
                self._ask(STEPS[following])
        elif self.plan:
            self._request(STEPS[self.plan[0]])
        elif self.status is Status.COMPENSATING:
            self.trigger_event(self.Cancelled, reason=self.reason)

    def _ask(self, step: Step) -> None:
        """Request a forward step, unless an operator has done it on the order already."""
        if step in DONE_BY_HAND and self._order_reached(step):
            self.trigger_event(self.StepDoneByHand, step=step.name)
            self._advance(step)
        else:
            self._request(step)

    def _remember_done_by_hand(self, step: Step) -> None:
        if self.status is Status.RUNNING and not self._order_reached(step):
            self.trigger_event(self.OrderMarkedByHand, state=step.succeeded)

    def _order_reached(self, step: Step) -> bool:
        return self.order in ORDER_PROGRESS and ORDER_PROGRESS.index(
            self.order
        ) >= ORDER_PROGRESS.index(step.succeeded)

    def _remember_undone(self, compensation: Step) -> None:
        """Someone else did what `compensation` would do: never ask for it (its participant
        would answer with nothing new, and the saga would wait for a confirmation in vain). A
        running saga cannot go on without it (a shipment dispatched for a refunded payment):
        it stops waiting for its step and compensates the rest at once."""
        live = self.status in (Status.RUNNING, Status.COMPENSATING, Status.PARKED)
        if not live or compensation not in undoing_due(self.payment, self.shipment):
            return
        self.trigger_event(self.UndoneElsewhere, step=compensation.name)
        if self.status is Status.RUNNING:
            reason = f"the {compensation.participant} was {compensation.succeeded} outside the saga"
            if self.step is not None:
                self._abandon(STEPS[self.step], reason)
            self._compensate(reason)

    def _compensate(self, reason: str) -> None:
        plan = [step.name for step in undoing_due(self.payment, self.shipment)]
        if self.order != CANCEL_ORDER.succeeded:
            plan.append(CANCEL_ORDER.name)
        self.trigger_event(self.CompensationStarted, reason=reason, plan=plan)
        self._advance(None)

    def _record_late(self, step: Step, **detail: str) -> None:
        """Record a payment's late authorization or capture, and make sure it is undone."""
        generation = self._generation_of(step)
        self.trigger_event(
            self.StepSucceeded, step=step.name, generation=generation, detail=detail, late=True
        )
        needed = PAYMENT_UNDOING[self.payment]  # the payment was just authorized or captured
        other = VOID_PAYMENT if needed is REFUND_PAYMENT else REFUND_PAYMENT
        if self.step == other.name:
            self._abandon(other, f"the payment was {self.payment}; {needed.name} instead")
            self._request(needed)
        elif other.name in self.plan:
            revised = [needed.name if name == other.name else name for name in self.plan]
            self.trigger_event(self.PlanRevised, plan=revised)
        elif needed.name in self.plan or self.step == needed.name:
            return
        elif self.step is not None:
            self.trigger_event(self.PlanRevised, plan=[needed.name, *self.plan])
        else:
            self._request(needed)

    def _abandon(self, step: Step, reason: str) -> None:
        generation = self._generation_of(step)
        self.trigger_event(self.StepAbandoned, step=step.name, generation=generation, reason=reason)

    def _request(self, step: Step) -> None:
        self.trigger_event(self.StepRequested, step=step.name, generation=self.generation)

    def _generation_of(self, step: Step) -> int:
        generation: int = self.records[step.name]["generation"]
        return generation

    def _deadline_id(self, step: Step) -> str:
        return deadline_id(self.id, step.name, self._generation_of(step))
