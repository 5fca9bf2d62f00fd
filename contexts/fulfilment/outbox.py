"""The saga's outputs: what the process must do after committing some of its events.

`outbox_after(saga, events)` turns the saga's new events into the commands to send, the
deadlines to set and the deadlines to drop. It reads nothing but those events and the saga's
immutable facts (`SagaFacts`), so a crash between commit and send, or a redelivered input,
yields identical commands with identical keys (`definition.command_key`).
"""

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate

from contexts.fulfilment import events as saga_events
from contexts.fulfilment import ids
from contexts.fulfilment.definition import (
    AUTHORIZE,
    CANCEL_ORDER,
    SCHEDULE,
    STEPS,
    Deadline,
    FulfilmentPolicy,
    Outbox,
    ParticipantCommand,
    Step,
    command_key,
    deadline_id,
)

SETTLING = (
    saga_events.StepSucceeded,
    saga_events.StepFailed,
    saga_events.StepAbandoned,
    saga_events.StepRefused,
)
"""The events after which a step's deadline has nothing left to decide: it may be dropped."""


class SagaFacts(Protocol):
    """What the commands are made of: fixed when the saga starts, but for `reason`, which is
    fixed when its compensation starts, before any command that carries it."""

    @property
    def id(self) -> UUID: ...

    order_id: UUID
    user_id: UUID
    amount: Decimal
    currency: str
    reason: str | None


def outbox_after(
    saga: SagaFacts, events: Iterable[Aggregate.Event], policy: FulfilmentPolicy
) -> Outbox:
    """The commands to send, deadlines to set and deadlines to drop after `events`."""
    outbox = Outbox([], [], [])
    for event in events:
        if isinstance(event, saga_events.StepRequested):
            spec = STEPS[event.step]
            outbox.commands.append(command(saga, spec, event.generation))
            due_in = policy.timeout_of(spec)
            if due_in is not None:
                deadline = deadline_id(saga.id, spec.name, event.generation)
                outbox.deadlines.append(Deadline(spec.name, due_in, deadline))
        elif isinstance(event, SETTLING):
            outbox.cancelled_deadlines.extend(_deadlines_settled_by(saga.id, event))
    return outbox


def _deadlines_settled_by(saga_id: UUID, event: Any) -> list[str]:
    if STEPS[event.step].timeout is None or getattr(event, "late", False):
        return []
    return [deadline_id(saga_id, event.step, event.generation)]


def command(saga: SagaFacts, step: Step, generation: int) -> ParticipantCommand:
    """The command of `step`, at `generation` (raised by each retry: a new key)."""
    aggregate_id = {
        "payments": ids.payment_id(saga.order_id),
        "shipping": ids.shipment_id(saga.order_id),
        "orders": saga.order_id,
    }[step.target]
    body: dict[str, str] = {}
    if step in (AUTHORIZE, SCHEDULE):
        body = {"order_id": str(saga.order_id), "user_id": str(saga.user_id)}
    if step is AUTHORIZE:
        body |= {"amount": str(saga.amount), "currency": saga.currency}
    if step is CANCEL_ORDER:
        body = {"reason": saga.reason or "fulfilment cancelled"}
    key = command_key(saga.id, step.name, generation)
    return ParticipantCommand(step.name, step.target, step.action, aggregate_id, body, key)
