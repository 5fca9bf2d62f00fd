"""What the participants' endpoints share: an intent recorded and answered at once, and the
command-side state with its version as ETag. (Apart from `contexts.participant`, which their
aggregates import and which therefore knows nothing of HTTP.)

Their commands are the fulfilment saga's (scope `<context>:write`) and operators'; a user may
read the state of their own payments and shipments (the aggregate's `user_id`)."""

from collections.abc import Callable
from typing import TypeVar

from eventsourcing.domain import Aggregate
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from domain.service import CommandContext, CommandResult
from runtime.auth.policy import Access, require
from runtime.auth.principal import Principal
from write_api.command_http import CommandHeaders, accepted, etag, run_blocking

M = TypeVar("M", bound=BaseModel)


async def record_intent(
    request: Request,
    caller: Principal,
    headers: CommandHeaders,
    context: str,
    command: Callable[[CommandContext], CommandResult],
) -> JSONResponse:
    """Run a bodiless command of `context` and answer `{id, version, position}`."""
    require(caller, context, Access.WRITE)
    ctx = headers.context(request)
    result = await run_blocking(request, lambda: command(ctx))
    return accepted(context, result, headers)


async def state_answer(
    request: Request,
    response: Response,
    caller: Principal,
    context: str,
    load: Callable[[], Aggregate],
    model: type[M],
) -> M:
    """The aggregate `load` gives, as `model` (read from its attributes), its version the ETag;
    for its owner (`user_id`), operators and `<context>:read`."""
    aggregate = await run_blocking(request, load)
    require(caller, context, Access.READ, owner=getattr(aggregate, "user_id", None))
    response.headers["ETag"] = etag(aggregate.version)
    return model.model_validate(aggregate)
