"""An aggregate's state as plain JSON values, and what changed between two states.

The state is every public attribute of the aggregate plus the public properties its own classes
define (an order's `total`), the library's bookkeeping (`id`, `version`, timestamps) aside. Money
and ids become strings, times ISO 8601, enums their value; a mapping of records (an order's lines
by SKU) becomes the list of those records.
"""

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

Plain = Any
"""None, bool, int, str, or lists and string-keyed dicts of them."""


def state_of(aggregate: object) -> dict[str, Plain]:
    return {name: plain(value) for name, value in public_values(aggregate).items()}


def public_values(obj: object) -> dict[str, Any]:
    values = {name: value for name, value in vars(obj).items() if not name.startswith("_")}
    for cls in reversed(type(obj).__mro__):
        if cls.__module__.startswith("eventsourcing") or cls is object:
            continue
        for name, attribute in vars(cls).items():
            if isinstance(attribute, property) and not name.startswith("_"):
                values[name] = getattr(obj, name)
    return values


def plain(value: Any) -> Plain:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if _is_record(value):
        value = public_values(value)
    elif isinstance(value, Mapping) and value and all(map(_is_record, value.values())):
        value = list(value.values())
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def _is_record(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def changes(before: Mapping[str, Plain], after: Mapping[str, Plain]) -> dict[str, dict[str, Plain]]:
    """Field by field, `{field: {"from": ..., "to": ...}}` for the fields that differ."""
    fields = [*before, *(name for name in after if name not in before)]
    return {
        name: {"from": before.get(name), "to": after.get(name)}
        for name in fields
        if before.get(name) != after.get(name)
    }


def describe(value: Plain) -> str:
    """One value for a table cell: records one per line, `-` for nothing."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return "\n".join(describe(item) for item in value) if value else "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={describe(v)}" for k, v in value.items())
    return str(value)
