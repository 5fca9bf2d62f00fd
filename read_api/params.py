"""Query and path parameters shared by the read endpoints, with their validation."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator

from domain.errors import InvalidValue
from domain.values import country_code, currency_code
from eventlog.settings import CONTEXTS, Settings
from read_api.problems import InvalidParameter

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
POSITION = re.compile(r"^([a-z]+):(\d{1,18})$")


def _domain_check(check: Callable[[str], str]) -> AfterValidator:
    """Run a domain value check inside pydantic, so its message lands on the parameter."""

    def validate(value: str) -> str:
        try:
            return check(value)
        except InvalidValue as error:
            raise ValueError(str(error)) from None

    return AfterValidator(validate)


CountryCode = Annotated[str, _domain_check(country_code)]
CurrencyCode = Annotated[str, _domain_check(currency_code)]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT}.")]
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        description="The `next_cursor` of the previous page, with the same filters.",
    ),
]
PositionQuery = Annotated[
    str | None,
    Query(
        description="Read-your-writes: the `position` a command returned (`<context>:<n>`). "
        "The answer waits until the read models behind this endpoint reflect it, or is a 503.",
        examples=["users:120"],
    ),
]
WaitQuery = Annotated[
    float | None,
    Query(
        ge=0,
        description="Seconds to wait for `position` (default `STRATA_READ_WAIT_DEFAULT_SECONDS`,"
        " at most `STRATA_READ_WAIT_MAX_SECONDS`).",
    ),
]


@dataclass(frozen=True)
class Position:
    context: str
    value: int

    def __str__(self) -> str:
        return f"{self.context}:{self.value}"


def parse_position(text: str) -> Position:
    match = POSITION.match(text)
    if match is None or match.group(1) not in CONTEXTS:
        raise InvalidParameter(
            "position",
            f"must be <context>:<n> with a context among {', '.join(CONTEXTS)} and an integer n,"
            f" got {text[:50]!r}",
        )
    return Position(match.group(1), int(match.group(2)))


def wait_seconds(wait: float | None, settings: Settings) -> float:
    if wait is None:
        return settings.read_wait_default_seconds
    if wait > settings.read_wait_max_seconds:
        raise InvalidParameter(
            "wait", f"may be at most {settings.read_wait_max_seconds:g} seconds, got {wait:g}"
        )
    return wait
