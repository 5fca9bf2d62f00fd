"""Query parameters the BFF routes share, parsed strictly (patterns on the text, not Pydantic's
lax coercions), `Forwarding`: what each downstream call of a request carries, and `Whose`: the
user a route's answer is about (the caller, or the `user_id` an operator names)."""

import re
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError

from bff.downstream import Forwarded
from bff.principal import Caller, Principal
from domain.values import CANONICAL_UUID
from eventlog.position_tokens import TOKEN
from runtime.settings import CommonSettings

CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

PositionParam = Annotated[
    str | None,
    Query(
        pattern=TOKEN.pattern,
        description="Read-your-writes: the `position` a command returned (`<context>:<n>:p<NN>`"
        " or `<context>:<n>`)."
        " Every section waits, up to `wait` seconds, until it reflects it; one that does not"
        " is unavailable (`behind`).",
        examples=["orders:120:p07"],
    ),
]
WaitParam = Annotated[
    str | None,
    Query(
        pattern=r"^[0-9]{1,2}(\.[0-9]{1,3})?$",
        description="Seconds each section may wait for `position` (the read API's default"
        " without it, at most `STRATA_READ_WAIT_MAX_SECONDS`).",
        examples=["2"],
    ),
]
UserIdParam = Annotated[
    str | None,
    Query(
        pattern=CANONICAL_UUID.pattern,
        description="Operators: whose data; the caller's own (its token's `sub`) by default."
        " Anyone else naming another user gets a 403.",
    ),
]
CursorParam = Annotated[
    str | None,
    Query(
        pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
        max_length=1000,
        description="The `next_cursor` of the previous page.",
    ),
]


def invalid_query(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", field), "msg": message, "type": "value"}])


async def forwarded(
    request: Request, caller: Caller, position: PositionParam = None, wait: WaitParam = None
) -> Forwarded:
    """What the request's downstream calls carry; `wait` is bounded by the app's settings."""
    seconds = None if wait is None else float(wait)
    most = settings_of(request).read_wait_max_seconds
    if seconds is not None and seconds > most:
        raise invalid_query("wait", f"may be at most {most:g} seconds, got {seconds:g}")
    correlation_id = request.headers.get("x-correlation-id")
    if correlation_id is not None and CORRELATION_ID.fullmatch(correlation_id) is None:
        correlation_id = None  # not the BFF's to refuse: it only passes it on
    return Forwarded(caller.authorization, correlation_id, position, seconds)


def settings_of(request: Request) -> CommonSettings:
    settings: CommonSettings = request.app.state.settings
    return settings


@dataclass(frozen=True)
class Subject:
    """Whose data a request asks for. The caller may not be allowed it, but that 403 is
    decided by `user_id()` in the route, once every parameter has passed: a parameter's 422
    comes first, whoever asks."""

    caller: Principal
    asked: UUID | None

    def user_id(self) -> UUID:
        """The caller's own id, or the `user_id` asked (the caller's own, or any user for an
        operator); raises Forbidden for anyone else."""
        return self.caller.user_id(self.asked)


async def whose(caller: Caller, user_id: UserIdParam = None) -> Subject:
    return Subject(caller, None if user_id is None else UUID(user_id))


Forwarding = Annotated[Forwarded, Depends(forwarded)]
Whose = Annotated[Subject, Depends(whose)]
