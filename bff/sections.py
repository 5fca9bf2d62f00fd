"""An answer of a BFF is made of sections, each fetched on its own: a section whose downstream
is down, or behind the caller's `position`, is `Unavailable` and the answer is still a 200.

`section(fetch)` runs one section's fetch with that fallback; `concurrently` runs an answer's
sections at once and, when one of them met a refusal to relay (`Refused`: 401, 403, 404, 422),
cancels the rest and raises that refusal.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from bff.downstream import Behind, RateLimited, Refused
from runtime.resilience import BreakerOpen, DownstreamProtocolError, DownstreamUnavailable

log = logging.getLogger("strata.bff")

T = TypeVar("T")
Reason = Literal[
    "breaker-open",
    "unreachable",
    "rate-limited",
    "behind",
    "unreadable",
    "needs-another",
    "switched-off",
]


class Unavailable(BaseModel):
    """A section the BFF could not fill this time: the rest of the answer stands."""

    unavailable: Literal[True] = True
    reason: Reason = Field(
        description="`breaker-open`: its downstream failed lately and is not called for now;"
        " `unreachable`: it failed or timed out now; `rate-limited`: the caller is over its own"
        " rate limit at the downstream (try again after `retry_after` seconds); `behind`: it"
        " has not reached `position`"
        " within `wait`; `unreadable`: it answered what the BFF cannot read (logged);"
        " `needs-another`: it is made from a section that is unavailable; `switched-off`: an"
        " operator turned it off (a feature flag, docs/config.md) and it is not fetched."
    )
    detail: str
    retry_after: int | None = Field(
        None,
        exclude_if=lambda seconds: seconds is None,
        description="`rate-limited`: seconds after which the downstream takes the caller's"
        " calls again (its `Retry-After`); absent otherwise.",
    )


async def section(fetch: Awaitable[T]) -> T | Unavailable:
    """The section `fetch` makes, or `Unavailable` saying why not."""
    try:
        return await fetch
    except BreakerOpen as error:
        return Unavailable(reason="breaker-open", detail=str(error))
    except DownstreamUnavailable as error:
        return Unavailable(reason="unreachable", detail=str(error))
    except RateLimited as error:
        return Unavailable(reason="rate-limited", detail=str(error), retry_after=error.retry_after)
    except Behind as error:
        return Unavailable(reason="behind", detail=str(error))
    except (DownstreamProtocolError, ValidationError) as error:
        log.error("a downstream answer the BFF cannot read: %s", error)
        return Unavailable(reason="unreadable", detail="the downstream's answer was unreadable")


@asynccontextmanager
async def concurrently() -> AsyncIterator[asyncio.TaskGroup]:
    """A task group for an answer's sections; a `Refused` in any of them is raised as is."""
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except ExceptionGroup as failed:
        refused = [error for error in failed.exceptions if isinstance(error, Refused)]
        if refused:
            raise refused[0] from None
        raise
