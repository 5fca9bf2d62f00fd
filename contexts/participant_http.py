"""What the participants' endpoints share: an intent recorded and answered at once, and the
command-side state with its version as ETag. (Apart from `contexts.participant`, which their
aggregates import and which therefore knows nothing of HTTP.)"""

from collections.abc import Callable
from typing import TypeVar

from eventsourcing.domain import Aggregate
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from domain.service import CommandContext, CommandResult
from write_api.command_http import CommandHeaders, accepted, etag, run_blocking

M = TypeVar("M", bound=BaseModel)


async def record_intent(
    request: Request,
    headers: CommandHeaders,
    context: str,
    command: Callable[[CommandContext], CommandResult],
) -> JSONResponse:
    """Run a bodiless command of `context` and answer `{id, version, position}`."""
    ctx = headers.context(request)
    result = await run_blocking(request, lambda: command(ctx))
    return accepted(context, result, headers)


async def state_answer(
    request: Request, response: Response, load: Callable[[], Aggregate], model: type[M]
) -> M:
    """The aggregate `load` gives, as `model` (read from its attributes), its version the ETag."""
    aggregate = await run_blocking(request, load)
    response.headers["ETag"] = etag(aggregate.version)
    return model.model_validate(aggregate)
