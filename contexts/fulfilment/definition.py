"""The definition of an order's fulfilment: its steps, whom each asks to do what, how long each
may take, and the values the saga hands to the process that runs it.

Nothing here knows of HTTP, SQL or settings: durations are fields of `FulfilmentPolicy` (the
service holds one: the defaults below, or a test's own), and the outputs (`ParticipantCommand`,
`Deadline`) are plain values the process turns into jobs.
"""

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Literal, NamedTuple
from uuid import UUID

from domain.orders.order import MAX_REASON_LENGTH
from domain.values import legible_text

DEFINITION_VERSION = 1
"""Recorded by each saga when it starts. Raise it when the steps or their order change, so a saga
started under the old definition can be told apart (and upcast or finished by the old rules)."""

Target = Literal["payments", "shipping", "orders"]
Action = Literal[
    "authorize", "capture", "void", "refund", "schedule", "dispatch", "cancel", "pay", "ship"
]
Participant = Literal["payment", "shipment", "order"]
TimeoutField = Literal[
    "authorize_timeout",
    "schedule_timeout",
    "capture_timeout",
    "dispatch_timeout",
    "compensation_timeout",
]


class FulfilmentStatus(StrEnum):
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    PARKED = "parked"
    """Needs attention: a compensation was not confirmed in time, or was refused (`retry`,
    `skip` or `resolve` it)."""
    RESOLVED = "resolved"
    """Ended by an operator who put things right by hand."""


class StepState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    COMPENSATED = "compensated"
    SKIPPED = "skipped"
    """A compensation an operator went on past (`skip`), saying why."""


@dataclass(frozen=True)
class Step:
    """One thing the saga asks of one participant, and what the participant is once it is done."""

    name: str
    target: Target
    action: Action
    participant: Participant
    """The saga's attribute that follows this participant's state."""
    succeeded: str
    """The participant's state once the step is confirmed."""
    timeout: TimeoutField | None = None
    """The policy field bounding the wait for the confirmation (None: retried until done)."""
    requested: str | None = None
    """The participant's state once the step is asked for, if asking changes it."""
    failed: str | None = None
    """The participant's state after a definitive refusal, if the step can be refused."""
    undoes: tuple[str, ...] = ()
    """The steps whose effect this (compensation) step reverses."""


AUTHORIZE = Step(
    "authorize", "payments", "authorize", "payment", "authorized",
    timeout="authorize_timeout", requested="requested", failed="declined",
)  # fmt: skip
SCHEDULE = Step(
    "schedule", "shipping", "schedule", "shipment", "scheduled",
    timeout="schedule_timeout", requested="requested", failed="failed",
)  # fmt: skip
CAPTURE = Step("capture", "payments", "capture", "payment", "captured", timeout="capture_timeout")
MARK_PAID = Step("mark_paid", "orders", "pay", "order", "paid")
DISPATCH = Step(
    "dispatch", "shipping", "dispatch", "shipment", "dispatched", timeout="dispatch_timeout"
)
MARK_SHIPPED = Step("mark_shipped", "orders", "ship", "order", "shipped")

CANCEL_SHIPMENT = Step(
    "cancel_shipment", "shipping", "cancel", "shipment", "cancelled",
    timeout="compensation_timeout", undoes=("schedule", "dispatch"),
)  # fmt: skip
VOID_PAYMENT = Step(
    "void_payment", "payments", "void", "payment", "voided",
    timeout="compensation_timeout", undoes=("authorize",),
)  # fmt: skip
REFUND_PAYMENT = Step(
    "refund_payment", "payments", "refund", "payment", "refunded",
    timeout="compensation_timeout", undoes=("authorize", "capture"),
)  # fmt: skip
CANCEL_ORDER = Step(
    "cancel_order", "orders", "cancel", "order", "cancelled",
    timeout="compensation_timeout", undoes=("mark_paid",),
)  # fmt: skip

FORWARD_STEPS = (AUTHORIZE, SCHEDULE, CAPTURE, MARK_PAID, DISPATCH, MARK_SHIPPED)
"""In order. Capture comes after schedule: nothing is charged for what no carrier can take."""
COMPENSATION_STEPS = (CANCEL_SHIPMENT, VOID_PAYMENT, REFUND_PAYMENT, CANCEL_ORDER)
STEPS = {step.name: step for step in FORWARD_STEPS + COMPENSATION_STEPS}
NEXT_STEP = {step.name: following.name for step, following in pairwise(FORWARD_STEPS)}
PAYMENT_UNDOING = {AUTHORIZE.succeeded: VOID_PAYMENT, CAPTURE.succeeded: REFUND_PAYMENT}
"""The payment's states that a compensation undoes, and which: a captured payment is refunded."""
SHIPMENT_UNDOING = {SCHEDULE.requested: CANCEL_SHIPMENT, SCHEDULE.succeeded: CANCEL_SHIPMENT}
"""The shipment's states that a compensation undoes: requested or scheduled, not dispatched."""


def undoing_due(payment: str, shipment: str) -> list[Step]:
    """The compensations the payment's and the shipment's states call for, in the order they are
    asked for: the shipment's cancellation, then the payment's void or refund."""
    due = [SHIPMENT_UNDOING.get(shipment), PAYMENT_UNDOING.get(payment)]
    return [step for step in due if step is not None]


@dataclass(frozen=True)
class FulfilmentPolicy:
    """How long the saga waits for each confirmation before it compensates (or, for a
    compensation, before it parks and asks for a person)."""

    authorize_timeout: timedelta = timedelta(seconds=30)
    schedule_timeout: timedelta = timedelta(seconds=60)
    capture_timeout: timedelta = timedelta(seconds=60)
    dispatch_timeout: timedelta = timedelta(seconds=120)
    compensation_timeout: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        for each in fields(self):
            if getattr(self, each.name) <= timedelta(0):
                raise ValueError(f"{each.name} must be positive, got {getattr(self, each.name)}")

    def timeout_of(self, step: Step) -> timedelta | None:
        if step.timeout is None:
            return None
        duration: timedelta = getattr(self, step.timeout)
        return duration


@dataclass(frozen=True)
class ParticipantCommand:
    """A command for a participant's write service. Its `key` is the Idempotency-Key: the same
    saga state always yields the same key, so a command resent after a crash is applied once."""

    step: str
    target: Target
    action: Action
    aggregate_id: UUID
    body: dict[str, str]
    key: str


@dataclass(frozen=True)
class Deadline:
    """When `due_in` has passed without the step's confirmation, the process calls
    `timed_out(step, deadline_id)`; the saga ignores a deadline that is no longer current."""

    step: str
    due_in: timedelta
    deadline_id: str


class Outbox(NamedTuple):
    """What the process must do after committing some of the saga's events."""

    commands: list[ParticipantCommand]
    deadlines: list[Deadline]
    cancelled_deadlines: list[str]
    """Ids of deadlines set earlier whose steps are settled: the process may drop them."""


@dataclass(frozen=True)
class StepRecord:
    """One step as a read model shows it: its latest state, since when, and what is known of it
    (the provider's reference, the carrier, or why it failed)."""

    name: str
    state: StepState
    at: datetime
    detail: dict[str, str] = field(default_factory=dict)


def command_key(saga_id: UUID, step: str, generation: int) -> str:
    """The Idempotency-Key of a step's command. The step name, unlike the action, is unique
    within a saga (shipping and orders both "cancel")."""
    return f"{saga_id}:{step}:{generation}"


def parse_command_key(key: str) -> tuple[UUID, str, int]:
    """The saga id, step and generation a command's key names (`command_key`)."""
    saga_id, step, generation = key.split(":")
    return UUID(saga_id), step, int(generation)


def deadline_id(saga_id: UUID, step: str, generation: int) -> str:
    return f"{saga_id}:{step}:{generation}:deadline"


def reason_text(text: str) -> str:
    """A reason the orders context accepts (`Order.cancel`), whatever a provider wrote."""
    return legible_text(text, max_length=MAX_REASON_LENGTH, fallback="no reason given")
