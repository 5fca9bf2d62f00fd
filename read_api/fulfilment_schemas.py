"""Response bodies of an order's fulfilment, as the `fulfilments` read model holds it; the order's
own detail (`schemas.Order`) carries its `FulfilmentProgress`."""

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from readmodels.formats import stored_time, stored_uuid
from readmodels.sql import Row

COLUMNS = (
    "order_id", "saga_id", "user_id", "status", "step", "attention", "reason", "note", "steps",
    "started_at", "updated_at", "version",
)  # fmt: skip
"""The `fulfilments` columns, in the order `fulfilment` reads a row."""


class FulfilmentStep(BaseModel):
    name: str
    state: str = Field(description="pending, done, failed, compensated or skipped.")
    at: datetime = Field(description="Since when it is in that state.")
    detail: dict[str, str] = Field(
        description="What is known of it: the provider's reference, the carrier, why it failed."
    )


class FulfilmentProgress(BaseModel):
    status: str = Field(
        description="running, compensating, completed, cancelled, parked or resolved."
    )
    step: str | None = Field(description="The step waited for; for a parked saga, its step.")
    attention: str | None = Field(description="Why a parked saga needs a person.")
    reason: str | None = Field(description="Why it compensates, or was cancelled.")
    steps: list[FulfilmentStep] = Field(description="Each step asked for, in the order asked.")


class Fulfilment(FulfilmentProgress):
    order_id: UUID
    saga_id: UUID
    user_id: UUID
    note: str | None = Field(description="How an operator resolved it.")
    started_at: datetime
    updated_at: datetime
    version: int


def fulfilment(row: Row) -> Fulfilment:
    values: dict[str, Any] = dict(zip(COLUMNS, row, strict=True))
    steps = values.pop("steps")
    for name in ("order_id", "saga_id", "user_id"):
        values[name] = stored_uuid(values[name])
    for name in ("started_at", "updated_at"):
        values[name] = stored_time(values[name])
    return Fulfilment(**values, steps=json.loads(steps))


def progress(row: Row | None) -> FulfilmentProgress | None:
    if row is None:
        return None
    whole = fulfilment(row)
    return FulfilmentProgress(**whole.model_dump(include=set(FulfilmentProgress.model_fields)))
