"""The fulfilment application: the OrderFulfilment saga driven by the other contexts' events.

Each upstream event the saga cares about becomes one call on one saga, run as a command whose
idempotency key is the event's `<context>:<position>`: the key is stored in the transaction of
the saga events it causes, so a redelivered event finds it and changes nothing. That record is
the input's tracking: each incoming event, with the saga events it causes, is committed once.

What the saga asks of the participants, and its deadlines, become durable jobs written with its
events (`job_changes`): `fulfilment-command` jobs, sent by the dispatcher
(`contexts.fulfilment.dispatch`), which hands a participant's refusal back (`record_refusal`),
and `fulfilment-deadline` jobs, which fire `timed_out`.

The saga needs a few facts the events that reach it do not carry: who placed an order and in
which currency (the orders' `Created`), and which order a payment or shipment is for (their
`Requested`). It keeps them in its own replica tables, in log order, before the events that need
them.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.domain import Aggregate

from contexts.fulfilment import ids
from contexts.fulfilment.definition import FulfilmentPolicy, FulfilmentStatus, parse_command_key
from contexts.fulfilment.domain import OrderFulfilment
from domain.errors import AggregateNotFound, DomainError, InvalidValue
from domain.ports import Job, JobChanges, ReplicaReader
from domain.service import CommandContext, CommandResult, CommandService, Decision
from domain.values import money_amount
from eventlog.envelope import EventEnvelope
from eventlog.replicas import ReplicaChange, ReplicaCheckpoint, ReplicaStore

COMMAND_JOB = "fulfilment-command"
DEADLINE_JOB = "fulfilment-deadline"
log = logging.getLogger("strata.fulfilment")

Input = Callable[[OrderFulfilment, Mapping[str, Any]], None]

_PAYMENT_INPUTS: Mapping[str, Input] = {
    "Authorized": lambda saga, data: saga.payment_authorized(str(data["reference"])),
    "Declined": lambda saga, data: saga.payment_declined(str(data["reason"])),
    "Captured": lambda saga, _: saga.payment_captured(),
    "Voided": lambda saga, _: saga.payment_voided(),
    "Refunded": lambda saga, _: saga.payment_refunded(),
}
_SHIPMENT_INPUTS: Mapping[str, Input] = {
    "Scheduled": lambda saga, data: saga.shipment_scheduled(
        str(data["carrier"]), str(data["reference"])
    ),
    "Failed": lambda saga, data: saga.shipment_failed(str(data["reason"])),
    "Dispatched": lambda saga, _: saga.shipment_dispatched(),
    "Cancelled": lambda saga, _: saga.shipment_cancelled(),
}
_ORDER_INPUTS: Mapping[str, Input] = {
    "Paid": lambda saga, _: saga.order_paid(),
    "Shipped": lambda saga, _: saga.order_shipped(),
    "Cancelled": lambda saga, data: saga.order_cancelled(str(data["reason"])),
}
INPUTS: Mapping[tuple[str, str], Mapping[str, Input]] = {
    ("payments", "Payment"): _PAYMENT_INPUTS,
    ("shipping", "Shipment"): _SHIPMENT_INPUTS,
    ("orders", "Order"): _ORDER_INPUTS,
}
FOLLOWED = ("orders", "payments", "shipping")


class FulfilmentService(CommandService):
    name: ClassVar[str] = "fulfilment"  # type: ignore[misc]
    policy: FulfilmentPolicy = FulfilmentPolicy()

    # -- inputs --------------------------------------------------------------------------------

    def take_event(self, event: EventEnvelope) -> None:
        """Apply one upstream event to the saga it concerns, once."""
        if event.aggregate_type == "Order" and event.event_type == "Created":
            self._keep_fact(
                event, {"user_id": event.data["user_id"], "currency": event.data["currency"]}
            )
        elif event.event_type == "Requested" and event.aggregate_type in ("Payment", "Shipment"):
            self._keep_fact(event, {"order_id": event.data["order_id"]})
        elif event.aggregate_type == "Order" and event.event_type == "Placed":
            self._start(event)
        else:
            inputs = INPUTS.get((event.context, event.aggregate_type), {})
            react = inputs.get(event.event_type)
            order_id = self._order_of(event)
            if react is not None and order_id is not None:
                self._apply(event, ids.saga_id(order_id), react)

    def _keep_fact(self, event: EventEnvelope, fact: Mapping[str, Any]) -> None:
        change = ReplicaChange(event.aggregate_id, event.aggregate_version, fact)
        checkpoint = ReplicaCheckpoint(event.position)
        self._replicas.apply_replica_changes(event.context, [change], checkpoint)

    def _order_of(self, event: EventEnvelope) -> UUID | None:
        if event.context == "orders":
            return event.aggregate_id
        fact = cast(ReplicaReader, self.recorder).replica_state(event.context, event.aggregate_id)
        return None if fact is None else UUID(str(fact["order_id"]))

    def _start(self, event: EventEnvelope) -> None:
        order = cast(ReplicaReader, self.recorder).replica_state("orders", event.aggregate_id)
        if order is None:
            log.error(
                "order %s was placed before it was created: not fulfilled", event.aggregate_id
            )
            return
        try:
            amount = money_amount(Decimal(str(event.data["total"])), field="total")
        except InvalidValue as error:  # placed before the orders refused such totals
            log.error("order %s cannot be paid (%s): not fulfilled", event.aggregate_id, error)
            return
        saga_id = ids.saga_id(event.aggregate_id)

        def start() -> Decision:
            existing = self._find(saga_id)
            if existing is not None:
                return Decision(existing)
            return Decision(
                OrderFulfilment.start(
                    event.aggregate_id,
                    UUID(str(order["user_id"])),
                    amount,
                    str(order["currency"]),
                )
            )

        self.create(self._input_context(event), start)

    def _apply(self, event: EventEnvelope, saga_id: UUID, react: Input) -> None:
        if self._find(saga_id) is None:
            return  # an order, payment or shipment the saga did not start (an operator's)
        self.update(
            self._input_context(event),
            OrderFulfilment,
            saga_id,
            lambda saga: react(saga, event.data),
        )

    @staticmethod
    def _input_context(event: EventEnvelope) -> CommandContext:
        key = f"{event.context}:{event.position}"
        return CommandContext(
            idempotency_key=key,
            fingerprint=key,
            correlation_id=event.correlation_id,
            causation_id=key,
        )

    def _find(self, saga_id: UUID) -> OrderFulfilment | None:
        try:
            return self.load(OrderFulfilment, saga_id)
        except AggregateNotFound:
            return None

    @property
    def _replicas(self) -> ReplicaStore:
        return cast(ReplicaStore, self.recorder)

    # -- deadlines and operators ---------------------------------------------------------------

    def fire_deadline(self, job: Job) -> None:
        saga_id, step = UUID(str(job.payload["saga_id"])), str(job.payload["step"])
        ctx = CommandContext(idempotency_key=f"deadline:{job.key}", fingerprint=job.key)
        self.update(ctx, OrderFulfilment, saga_id, lambda saga: saga.timed_out(step, job.key))

    def record_refusal(self, command_key: str, reason: str) -> None:
        """A participant refused the saga's command of this key: the saga decides at once. The
        dispatcher's job may run again after a crash; the refusal's own key makes that a no-op."""
        saga_id, step, generation = parse_command_key(command_key)
        key = f"refused:{command_key}"
        ctx = CommandContext(idempotency_key=key, fingerprint=command_key, causation_id=command_key)
        self.update(
            ctx,
            OrderFulfilment,
            saga_id,
            lambda saga: saga.command_refused(step, generation, reason),
        )

    def retry(self, ctx: CommandContext, saga_id: UUID) -> CommandResult:
        """Ask a parked saga's participant again; a saga that is not parked is refused."""
        return self._on_parked(ctx, saga_id, lambda saga: saga.retry())

    def skip(self, ctx: CommandContext, saga_id: UUID, note: str) -> CommandResult:
        """Go on past a parked saga's step with the rest of its compensation; a saga that is
        not parked is refused."""
        return self._on_parked(ctx, saga_id, lambda saga: saga.skip(note))

    def resolve(self, ctx: CommandContext, saga_id: UUID, note: str) -> CommandResult:
        """End a parked saga that a person settled; a saga that is not parked is refused."""
        return self._on_parked(ctx, saga_id, lambda saga: saga.resolve(note))

    def _on_parked(
        self, ctx: CommandContext, saga_id: UUID, act: Callable[[OrderFulfilment], None]
    ) -> CommandResult:
        def on_parked(saga: OrderFulfilment) -> None:
            _require_parked(saga)
            act(saga)

        return self.update(ctx, OrderFulfilment, saga_id, on_parked)

    def saga(self, saga_id: UUID) -> OrderFulfilment:
        return self.load(OrderFulfilment, saga_id)

    # -- outputs -------------------------------------------------------------------------------

    def job_changes(self, aggregate: Aggregate, events: Sequence[Aggregate.Event]) -> JobChanges:
        if not isinstance(aggregate, OrderFulfilment) or not events:
            return JobChanges()
        outbox = aggregate.outbox_after(events, self.policy)
        now = events[-1].timestamp
        commands = [
            Job(
                COMMAND_JOB,
                command.key,
                now,
                {
                    "saga_id": str(aggregate.id),
                    "step": command.step,
                    "target": command.target,
                    "action": command.action,
                    "aggregate_id": str(command.aggregate_id),
                    "body": command.body,
                },
            )
            for command in outbox.commands
        ]
        deadlines = [
            Job(
                DEADLINE_JOB,
                deadline.deadline_id,
                now + deadline.due_in,
                {"saga_id": str(aggregate.id), "step": deadline.step},
            )
            for deadline in outbox.deadlines
        ]
        done = [(DEADLINE_JOB, deadline_id) for deadline_id in outbox.cancelled_deadlines]
        return JobChanges([*commands, *deadlines], done)


def _require_parked(saga: OrderFulfilment) -> None:
    """Only a parked saga waits for a person: retry, skip and resolve are refused on any
    other."""
    if saga.status is not FulfilmentStatus.PARKED:
        raise DomainError(f"the fulfilment of order {saga.order_id} is {saga.status}, not parked")
