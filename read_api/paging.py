"""Keyset pages: stores fetch `limit + 1` rows after the cursor's key; the extra row says whether
another page follows, and the last row shown becomes the next cursor."""

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import TypeVar
from uuid import UUID

from read_api.cursors import CursorCodec, JSONScalar, invalid

R = TypeVar("R")


def scope(endpoint: str, filters: Mapping[str, object]) -> str:
    """What a cursor is bound to: the endpoint and its filters, in a canonical form."""
    return endpoint + json.dumps(filters, sort_keys=True, default=str)


def cut(
    rows: Sequence[R],
    limit: int,
    key: Callable[[R], list[JSONScalar]],
    codec: CursorCodec,
    bound_to: str,
) -> tuple[list[R], str | None]:
    if len(rows) <= limit:
        return list(rows), None
    page = list(rows[:limit])
    return page, codec.encode(bound_to, key(page[-1]))


def key_uuid(value: object) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise invalid("holds no valid id") from None


def key_time(value: object) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise invalid("holds no valid time") from None
    if parsed.tzinfo is None:
        raise invalid("holds no valid time")
    return parsed


def key_day(value: object) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise invalid("holds no valid day") from None


def key_text(value: object) -> str:
    if not isinstance(value, str):
        raise invalid("holds no valid text")
    return value
