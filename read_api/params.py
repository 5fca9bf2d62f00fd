"""Query and path parameters of the read endpoints, parsed strictly before any store call.

Every parameter arrives as text. Pydantic's own coercions are laxer than this API promises (they
read `1.0`, ` 5` and `1_000` as integers, `nan` as a number of seconds, a Unix time as a datetime,
a UUID without hyphens), so each parameter's text goes through a parser here first; the declared
type only documents it. A parser refuses with a message and the 422 names the parameter
(`query.<name>` or `path.<name>`). Text filters obey the system's one text rule and are
normalised the way commands normalise the value they match (`domain.values.named_text`:
`bounded_text` less its base-character rule, so that values stored before it can be found).
"""

import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query
from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from domain.errors import InvalidValue
from domain.orders.order import OrderStatus
from domain.users.profile import MAX_CITY_LENGTH, MAX_HOBBY_LENGTH, MAX_NAME_LENGTH
from domain.values import (
    CANONICAL_UUID,
    caseless,
    country_code,
    currency_code,
    named_text,
    plain_text,
)
from eventlog.envelope import PARTITIONS
from eventlog.position_tokens import PositionToken, parse_token
from read_api.problems import InvalidParameter
from runtime.settings import CommonSettings

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CODE_LENGTH = 10
"""Longer than any padded ISO code worth parsing; the domain check says why a code is wrong."""

INTEGER = re.compile(r"[0-9]{1,9}")
SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})"
)


def strictly(parse: Callable[[str], Any]) -> BeforeValidator:
    """Parse a parameter's text with `parse`; its InvalidValue becomes the parameter's 422."""

    def validate(value: object) -> object:
        if not isinstance(value, str):
            return value  # a default, not something the client sent
        try:
            return parse(value)
        except InvalidValue as error:
            raise PydanticCustomError("invalid_parameter", str(error)) from None

    return BeforeValidator(validate)


def integer(text: str) -> int:
    if INTEGER.fullmatch(text) is None:
        raise InvalidValue("must be a whole number in ASCII digits, such as 50")
    return int(text)


def seconds(text: str) -> float:
    if SECONDS.fullmatch(text) is None:
        raise InvalidValue("must be a number of seconds in ASCII digits, such as 2 or 0.5")
    return float(text)


def canonical_uuid(text: str) -> UUID:
    if CANONICAL_UUID.fullmatch(text) is None:
        raise InvalidValue("must be a UUID in its canonical 8-4-4-4-12 hexadecimal form")
    return UUID(text)


def day(text: str) -> date:
    try:
        if DAY.fullmatch(text) is None:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidValue("must be a day as YYYY-MM-DD, such as 2026-01-31") from None


def instant(text: str) -> datetime:
    """An ISO 8601 date and time with `Z` or an offset, in UTC (within the years 1 to 9999)."""
    try:
        if INSTANT.fullmatch(text) is None:
            raise ValueError
        return datetime.fromisoformat(text).astimezone(UTC)
    except OverflowError:
        raise InvalidValue("must fall within the years 1 to 9999 in UTC") from None
    except ValueError:
        hint = " (a '+' in a URL means a space: write it %2B)" if " " in text else ""
        raise InvalidValue(
            "must be an ISO 8601 time with an offset, such as 2026-01-31T09:30:00Z" + hint
        ) from None


Position = PositionToken


def parse_position(text: str, contexts: Sequence[str] | None = None) -> Position:
    """`<context>:<n>` or `<context>:<n>:p<NN>` (eventlog.position_tokens); with `contexts` (the
    read API's, known per app), one of those."""
    try:
        token = parse_token(text)
    except ValueError:
        token = None
    if token is None or (contexts is not None and token.context not in contexts):
        among = "" if contexts is None else f" with a context among {', '.join(contexts)}"
        raise InvalidValue(
            f"must be <context>:<n> or <context>:<n>:p<NN>{among}, n in ASCII digits and NN"
            f" below {PARTITIONS}, such as users:120:p07"
        )
    return token


def position_text(text: str) -> str:
    parse_position(text)
    return text


def search_key(text: str) -> str:
    """A filter keyed as the projections index (`name_lower`, `hobby_lower` hold caseless keys)."""
    return caseless(text)


def city(text: str) -> str:
    """Matches the city exactly as `UserProfile.change_location` stored it."""
    return named_text(text, field="city", max_length=MAX_CITY_LENGTH)


def hobby(text: str) -> str:
    """Matches a hobby as `UserProfile.add_hobby` stored it, in any case or normalization."""
    return search_key(named_text(text, field="hobby", max_length=MAX_HOBBY_LENGTH))


def name_prefix(text: str) -> str:
    """The start of a name, keyed like `name_lower`. Names are stored stripped, so leading
    whitespace is dropped; trailing whitespace is kept: `Ada ` finds "Ada Lovelace", not "Adam"."""
    prefix = plain_text(text, field="name_prefix").lstrip()
    if not 1 <= len(prefix) <= MAX_NAME_LENGTH:
        raise InvalidValue(f"name_prefix must be 1 to {MAX_NAME_LENGTH} characters")
    return search_key(prefix)


def code(field: str, check: Callable[[str], str]) -> Callable[[str], str]:
    """An ISO code parameter: the text rule, a length bound, then the domain's own check."""

    def parse(text: str) -> str:
        if len(plain_text(text, field=field)) > MAX_CODE_LENGTH:
            raise InvalidValue(f"{field} is too long to be a code, got {len(text)} characters")
        return check(text)

    return parse


def order_status(text: str) -> OrderStatus:
    try:
        return OrderStatus(text)
    except ValueError:
        known = ", ".join(status.value for status in OrderStatus)
        raise InvalidValue(f"must be one of {known}") from None


CountryCode = Annotated[str, strictly(code("country", country_code))]
CurrencyCode = Annotated[str, strictly(code("currency", currency_code))]
Uuid = Annotated[UUID, strictly(canonical_uuid)]
Day = Annotated[date, strictly(day)]
Instant = Annotated[datetime, strictly(instant)]
Status = Annotated[OrderStatus, strictly(order_status)]
City = Annotated[str, strictly(city)]
Hobby = Annotated[str, strictly(hobby)]
NamePrefix = Annotated[str, strictly(name_prefix)]

Limit = Annotated[
    Annotated[int, Field(ge=1, le=MAX_LIMIT), strictly(integer)],
    Query(description=f"Items per page, 1 to {MAX_LIMIT}."),
]
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        description="The `next_cursor` of the previous page, with the same filters.",
    ),
]
PositionQuery = Annotated[
    Annotated[str, strictly(position_text)] | None,
    Query(
        description="Read-your-writes: the `position` a command returned"
        " (`<context>:<n>:p<NN>`, or a bare `<context>:<n>`). The answer waits until the read"
        " models behind this endpoint reflect it (in partition NN, or in every partition), or"
        " is a 503.",
        examples=["users:120:p07"],
    ),
]
WaitQuery = Annotated[
    Annotated[float, Field(ge=0), strictly(seconds)] | None,
    Query(
        description="Seconds to wait for `position` (default `STRATA_READ_WAIT_DEFAULT_SECONDS`,"
        " at most `STRATA_READ_WAIT_MAX_SECONDS`).",
    ),
]


def wait_seconds(wait: float | None, settings: CommonSettings) -> float:
    if wait is None:
        return settings.read_wait_default_seconds
    if wait > settings.read_wait_max_seconds:
        raise InvalidParameter(
            "wait", f"may be at most {settings.read_wait_max_seconds:g} seconds, got {wait:g}"
        )
    return wait
