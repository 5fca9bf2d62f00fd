"""`fulfilments`: each order's saga as the read side shows it: status, the step waited for, why it
needs attention, and each step's latest state (see docs/read-models.md).

The fold mirrors how the saga's own events change its state (`contexts/fulfilment/events.py`),
from the envelopes alone: projections stay apart from the write side's code.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.rows import Rows
from readmodels.fulfilment_catalog import FULFILMENTS

UNDOES = {
    "cancel_shipment": ("schedule", "dispatch"),
    "void_payment": ("authorize",),
    "refund_payment": ("authorize", "capture"),
    "cancel_order": ("mark_paid",),
}
"""The forward steps each compensation reverses (`definition.Step.undoes`; a test compares)."""

Record = dict[str, Any]


@dataclass(frozen=True)
class Saga:
    """The columns of one row that events change (the others are set when it starts)."""

    status: str
    step: str | None = None
    attention: str | None = None
    reason: str | None = None
    note: str | None = None
    steps: list[Record] = field(default_factory=list)


Fold = Callable[[Saga, dict[str, Any], str], Saga]


def _requested(saga: Saga, data: dict[str, Any], at: str) -> Saga:
    steps = _put(saga.steps, {"name": data["step"], "state": "pending", "at": at})
    return replace(saga, step=data["step"], status=_resumed(saga.status), steps=steps)


def _refused(saga: Saga, data: dict[str, Any], at: str) -> Saga:
    steps = _mark(saga.steps, data["step"], "failed", at, {"reason": data["reason"]})
    return replace(saga, step=None, steps=steps)


def _given_up(saga: Saga, step: str, reason: str, at: str) -> Saga:
    """Timed out or refused: failed, but still the step the saga is on until it decides."""
    return replace(saga, steps=_mark(saga.steps, step, "failed", at, {"reason": reason}))


def _done_by_hand(saga: Saga, data: dict[str, Any], at: str) -> Saga:
    record = {"name": data["step"], "state": "done", "at": at}
    steps = _mark(_put(saga.steps, record), data["step"], "done", at, {"by": "operator"})
    return replace(saga, steps=steps)


def _skipped(saga: Saga, data: dict[str, Any], at: str) -> Saga:
    """An operator went on past the step the saga was parked on: its compensation resumes."""
    steps = _mark(saga.steps, data["step"], "skipped", at, {"note": data["note"]})
    return replace(saga, status="compensating", attention=None, step=None, steps=steps)


FOLDS: dict[str, Fold] = {
    "StepRequested": _requested,
    "StepSucceeded": lambda saga, data, at: _succeeded(saga, data["step"], data["detail"], at),
    "StepFailed": _refused,
    "StepAbandoned": _refused,
    "StepTimedOut": lambda saga, data, at: _given_up(saga, data["step"], "timed out", at),
    "StepRefused": lambda saga, data, at: _given_up(saga, data["step"], data["reason"], at),
    "StepDoneByHand": _done_by_hand,
    "UndoneElsewhere": lambda saga, data, at: replace(
        saga, steps=_compensated(saga.steps, data["step"], at)
    ),
    "CompensationStarted": lambda saga, data, _: replace(
        saga, status="compensating", reason=data["reason"], step=None
    ),
    "Completed": lambda saga, _, __: replace(saga, status="completed"),
    "Cancelled": lambda saga, _, __: replace(saga, status="cancelled"),
    "Parked": lambda saga, data, _: replace(saga, status="parked", attention=data["reason"]),
    "Retried": lambda saga, _, __: replace(saga, attention=None),
    "StepSkipped": _skipped,
    "Resolved": lambda saga, data, _: replace(
        saga, status="resolved", note=data["note"], attention=None, step=None
    ),
}
"""How each event changes the row; the others (`OrderCancelled`, `OrderMarkedByHand`,
`PlanRevised`) change only its version: the plan of compensations to come is not shown."""


def fold(saga: Saga, event_type: str, data: dict[str, Any], at: str) -> Saga:
    """The saga after one of its events (`at`: the event's time, ISO 8601)."""
    change = FOLDS.get(event_type)
    return saga if change is None else change(saga, data, at)


def _resumed(status: str) -> str:
    """Asked anew, or confirmed at last: a parked saga's compensation resumes."""
    return "compensating" if status == "parked" else status


def _succeeded(saga: Saga, step: str, detail: dict[str, str], at: str) -> Saga:
    steps = _compensated(_mark(saga.steps, step, "done", at, detail), step, at)
    if saga.step != step:
        return replace(saga, steps=steps)
    return replace(saga, step=None, status=_resumed(saga.status), steps=steps)


def _compensated(steps: list[Record], compensation: str, at: str) -> list[Record]:
    """The steps done that `compensation` reverses, marked compensated."""
    for undone in UNDOES.get(compensation, ()):
        if any(r["name"] == undone and r["state"] == "done" for r in steps):
            steps = _mark(steps, undone, "compensated", at)
    return steps


def _put(steps: list[Record], record: Record) -> list[Record]:
    """A step asked for (again: in its first place, its detail forgotten)."""
    record = {**record, "detail": {}}
    names = [r["name"] for r in steps]
    if record["name"] not in names:
        return [*steps, record]
    return [record if r["name"] == record["name"] else r for r in steps]


def _mark(
    steps: list[Record], name: str, state: str, at: str, detail: Mapping[str, str] | None = None
) -> list[Record]:
    """A step's new state, since `at`, with what is now known of it."""
    return [
        {**r, "state": state, "at": at, "detail": {**r["detail"], **(detail or {})}}
        if r["name"] == name
        else r
        for r in steps
    ]


class Fulfilments(SqlProjection):
    read_model = FULFILMENTS

    @property
    def row_keys(self) -> dict[str, tuple[str, ...]]:
        return {"fulfilments": ("saga_id",)}  # its events name the saga, not the order

    def project(self, rows: Rows, event: EventEnvelope) -> None:
        if event.aggregate_type != "OrderFulfilment":
            return
        self.require_schema(event)
        saga = {"saga_id": event.aggregate_id}
        if event.event_type == "Started":
            rows.insert("fulfilments", {**saga, **_started(event)})
            return
        what = f"fulfilment {event.aggregate_id}"
        row = rows.one("fulfilments", saga, _CHANGING, what=what)
        before = Saga(**{**row, "steps": json.loads(row["steps"])})
        after = fold(before, event.event_type, event.data, event.timestamp.isoformat())
        changed = {**vars(after), "steps": _json(after.steps)}
        columns = {**changed, "updated_at": event.timestamp, "version": event.aggregate_version}
        rows.update("fulfilments", saga, set=columns, what=what)


_CHANGING = ("status", "step", "attention", "reason", "note", "steps")
"""The columns events change (the fields of `Saga`)."""


def _started(event: EventEnvelope) -> dict[str, object]:
    return {
        "order_id": UUID(event.data["order_id"]),
        "user_id": UUID(event.data["user_id"]),
        "status": "running",
        "steps": "[]",
        "started_at": event.timestamp,
        "updated_at": event.timestamp,
        "version": event.aggregate_version,
    }


def _json(steps: list[Record]) -> str:
    return json.dumps(steps, ensure_ascii=False, separators=(",", ":"))
