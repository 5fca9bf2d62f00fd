"""The `as_of` query parameter of the state endpoints: "the aggregate as it was at this time"."""

import re
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError

from runtime.instants import NotAnInstant, parse_instant

AS_OF_HELP = (
    "Answer with the state as of this time, from the event store: the fold of exactly the"
    " aggregate's events with timestamp <= as_of. ISO 8601 (no offset means UTC) or relative to"
    " now: -90s, -30m, -2h, -1d. 404 `not-found-at-time` if the aggregate did not exist yet."
)


# Printable ASCII with no space at either end: no other digits, no controls, one spelling.
# (An empty value passes here, to be told by parse_instant which forms a time can take.)
AS_OF_TEXT = re.compile(r"(?:[!-~](?:[ -~]*[!-~])?)?")


def _invalid(message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", "as_of"), "msg": message, "type": "value_error"}]
    )


async def as_of_query(
    as_of: Annotated[str | None, Query(description=AS_OF_HELP, max_length=64)] = None,
) -> datetime | None:
    if as_of is None:
        return None
    if AS_OF_TEXT.fullmatch(as_of) is None:
        raise _invalid("must be printable ASCII (digits 0-9) with no space at either end")
    try:
        return parse_instant(as_of)
    except NotAnInstant as error:
        raise _invalid(str(error)) from None


# Async on purpose, like the other dependencies: FastAPI runs sync ones on the thread pool.
AsOf = Annotated[datetime | None, Depends(as_of_query)]
