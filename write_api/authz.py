"""Authorization of the command endpoints (the rules are `runtime.auth.policy`'s).

`require_owner` looks the resource's owner up (a blocking load, on the runner) only when the
caller's role or scopes do not already settle it: operators and service accounts never pay for
the lookup. A resource that does not exist raises its 404 from the lookup, as the command would.
"""

from collections.abc import Callable

from fastapi import Request

from runtime.auth.policy import Access, permits, require
from runtime.auth.principal import Principal
from write_api.command_http import run_blocking


async def require_owner(
    request: Request,
    caller: Principal,
    context: str,
    access: Access,
    owner: Callable[[], object],
) -> None:
    if permits(caller, context, access):
        return
    require(caller, context, access, await run_blocking(request, owner))
