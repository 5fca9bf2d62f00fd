"""The events of the OrderFulfilment saga, and how each changes the saga's state.

`domain.OrderFulfilment` names each of them as one of its own (so each is stored under the topic
`contexts.fulfilment.domain:OrderFulfilment.<Event>`); they live here, apart from its decisions,
so that each module stays readable. All are past tense, at class_version 1, with JSON fields.
"""

from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from contexts.fulfilment.definition import CANCEL_ORDER, STEPS, FulfilmentStatus, StepState

Status = FulfilmentStatus


def record(saga: Any, step: str, state: StepState, at: Any, **detail: Any) -> None:
    """Update the read-side record of a step already asked for (`StepRequested` creates it)."""
    entry = saga.records[step]
    entry.update(state=state.value, at=at)
    entry["detail"].update(detail)


def record_undone(saga: Any, compensation: str, at: Any) -> None:
    """Mark the steps done that `compensation` reverses as compensated."""
    for undone in STEPS[compensation].undoes:
        if undone in saga.records and saga.records[undone]["state"] == StepState.DONE:
            record(saga, undone, StepState.COMPENSATED, at)


class Started(Aggregate.Created):
    class_version = 1
    order_id: UUID
    user_id: UUID
    amount: Decimal
    currency: str
    definition_version: int


class StepRequested(Aggregate.Event):
    class_version = 1
    step: str
    generation: int

    def apply(self, saga: Any) -> None:
        spec = STEPS[self.step]
        saga.step = self.step
        if self.step in saga.plan:
            saga.plan.remove(self.step)
        if spec.requested is not None:
            setattr(saga, spec.participant, spec.requested)
        if saga.status is Status.PARKED:  # asked anew: the compensation resumes
            saga.status = Status.COMPENSATING
        saga.records[self.step] = {"generation": self.generation, "detail": {}}
        record(saga, self.step, StepState.PENDING, self.timestamp)


class StepSucceeded(Aggregate.Event):
    class_version = 1
    step: str
    generation: int
    detail: dict[str, str]
    late: bool
    """Confirmed after the saga stopped waiting for it (its deadline passed, or it was
    abandoned): no deadline is left to drop."""

    def apply(self, saga: Any) -> None:
        spec = STEPS[self.step]
        setattr(saga, spec.participant, spec.succeeded)
        record(saga, self.step, StepState.DONE, self.timestamp, **self.detail)
        record_undone(saga, self.step, self.timestamp)
        if saga.step == self.step:
            saga.step = None
            if saga.status is Status.PARKED:  # confirmed at last: the compensation resumes
                saga.status = Status.COMPENSATING


class StepFailed(Aggregate.Event):
    """The participant refused for good (a decline, no carrier)."""

    class_version = 1
    step: str
    generation: int
    reason: str

    def apply(self, saga: Any) -> None:
        spec = STEPS[self.step]
        setattr(saga, spec.participant, spec.failed)
        record(saga, self.step, StepState.FAILED, self.timestamp, reason=self.reason)
        saga.step = None


class StepAbandoned(Aggregate.Event):
    """The saga stopped waiting for a step that became pointless (e.g. the order was
    cancelled, or a void was overtaken by a capture)."""

    class_version = 1
    step: str
    generation: int
    reason: str

    def apply(self, saga: Any) -> None:
        record(saga, self.step, StepState.FAILED, self.timestamp, reason=self.reason)
        saga.step = None


class StepTimedOut(Aggregate.Event):
    class_version = 1
    step: str
    generation: int
    deadline_id: str

    def apply(self, saga: Any) -> None:
        record(saga, self.step, StepState.FAILED, self.timestamp, reason="timed out")


class StepRefused(Aggregate.Event):
    """The participant would not take the step's command at all (its state does not allow it:
    a 4xx, a `DomainError`), unlike `StepFailed`, an outcome the participant recorded (a
    decline). Asking again would not change that. `reason` is the participant's words."""

    class_version = 1
    step: str
    generation: int
    reason: str

    def apply(self, saga: Any) -> None:
        record(saga, self.step, StepState.FAILED, self.timestamp, reason=self.reason)


class OrderCancelled(Aggregate.Event):
    """The order was cancelled by someone other than this saga."""

    class_version = 1
    reason: str

    def apply(self, saga: Any) -> None:
        saga.order = CANCEL_ORDER.succeeded
        if CANCEL_ORDER.name in saga.plan:
            saga.plan.remove(CANCEL_ORDER.name)


class OrderMarkedByHand(Aggregate.Event):
    """An operator marked the order paid or shipped before the saga asked for it."""

    class_version = 1
    state: str

    def apply(self, saga: Any) -> None:
        saga.order = self.state


class StepDoneByHand(Aggregate.Event):
    """The saga came to a step on the order that an operator had done already: it counts as
    done, and no command is sent."""

    class_version = 1
    step: str

    def apply(self, saga: Any) -> None:
        saga.records[self.step] = {"generation": saga.generation, "detail": {}}
        record(saga, self.step, StepState.DONE, self.timestamp, by="operator")


class UndoneElsewhere(Aggregate.Event):
    """The payment was voided or refunded, or the shipment cancelled, while the saga did not wait
    for it (an operator did it): `step`, the compensation that would have done it, is not asked
    for. Asked, the participant would record nothing new, and no confirmation would come."""

    class_version = 1
    step: str

    def apply(self, saga: Any) -> None:
        spec = STEPS[self.step]
        setattr(saga, spec.participant, spec.succeeded)
        record_undone(saga, self.step, self.timestamp)
        if self.step in saga.plan:
            saga.plan.remove(self.step)


class CompensationStarted(Aggregate.Event):
    class_version = 1
    reason: str
    plan: list[str]

    def apply(self, saga: Any) -> None:
        saga.status = Status.COMPENSATING
        saga.reason = self.reason
        saga.plan = list(self.plan)
        saga.step = None


class PlanRevised(Aggregate.Event):
    """A late reply changed what is left to compensate."""

    class_version = 1
    plan: list[str]

    def apply(self, saga: Any) -> None:
        saga.plan = list(self.plan)


class Completed(Aggregate.Event):
    class_version = 1

    def apply(self, saga: Any) -> None:
        saga.status = Status.COMPLETED


class Cancelled(Aggregate.Event):
    class_version = 1
    reason: str

    def apply(self, saga: Any) -> None:
        saga.status = Status.CANCELLED


class Parked(Aggregate.Event):
    class_version = 1
    step: str
    reason: str

    def apply(self, saga: Any) -> None:
        saga.status = Status.PARKED
        saga.attention = self.reason


class Retried(Aggregate.Event):
    class_version = 1
    generation: int

    def apply(self, saga: Any) -> None:
        saga.generation = self.generation
        saga.attention = None


class StepSkipped(Aggregate.Event):
    """An operator went on past the compensation step the saga was parked on, saying why in
    `note` (seen to by hand, or not to be done): the compensation resumes with its plan."""

    class_version = 1
    step: str
    note: str

    def apply(self, saga: Any) -> None:
        record(saga, self.step, StepState.SKIPPED, self.timestamp, note=self.note)
        saga.status = Status.COMPENSATING
        saga.attention = None
        saga.step = None


class Resolved(Aggregate.Event):
    class_version = 1
    note: str

    def apply(self, saga: Any) -> None:
        saga.status = Status.RESOLVED
        saga.note = self.note
        saga.attention = None
        saga.step = None
        saga.plan = []
