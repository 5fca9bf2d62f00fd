"""Command endpoints of the users context, and its command-side state."""

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from domain.users.profile import UserProfile
from domain.users.service import UsersService
from runtime.auth.http import Caller
from runtime.auth.policy import Access, require
from write_api.as_of import AsOf
from write_api.command_http import CommandRoute, Headers, accepted, etag, run_blocking
from write_api.schemas import (
    Accepted,
    AddHobby,
    ChangeEmail,
    ChangeLocation,
    Hobby,
    Id,
    RegisterUser,
    RenameUser,
    UserProfileState,
)

if TYPE_CHECKING:  # the registry imports this router, and the stores import the registry
    from eventlog.stores import Services

router = APIRouter(prefix="/users", tags=["users"], route_class=CommandRoute)
"""A user may command and read their own profile only, and may not reactivate it (a
deactivation may be an operator's). Registering is for operators and the identity service
(scope `users:write`): a user's token names a profile that exists already."""
CONTEXT = "users"
HobbyInPath = Annotated[
    Hobby,
    Path(
        description="The hobby as it was added, percent-encoded: `/` as `%2F`, `%`, `?`, `#`"
        " and spaces as `%25`, `%3F`, `%23`, `%20`. Compared like an added hobby: trimmed,"
        " ignoring letter case. `.` and `..` are no longer added (no URL path can name them:"
        " proxies remove dot-segments, `%2E` included); one added before is named with a space"
        " beside it, `%20%2E%2E`, which is trimmed."
    ),
]


def users(request: Request) -> UsersService:
    services: Services = request.app.state.services
    return services.application(UsersService)


@router.post("", status_code=201, response_model=Accepted)
async def register(
    caller: Caller, body: RegisterUser, request: Request, headers: Headers
) -> JSONResponse:
    require(caller, CONTEXT, Access.WRITE)
    ctx = headers.context(request, body)
    result = await run_blocking(
        request, lambda: users(request).register(ctx, body.name, body.email)
    )
    return accepted(CONTEXT, result, headers, created=True)


@router.get("/{user_id}", response_model=UserProfileState)
async def get_profile(
    caller: Caller, user_id: Id, request: Request, response: Response, as_of: AsOf
) -> UserProfileState:
    """The profile now, or as of `as_of`; the ETag is its version."""
    require(caller, CONTEXT, Access.READ, owner=user_id)

    def load() -> UserProfile:
        if as_of is None:
            return users(request).profile(user_id)
        return users(request).state_at(UserProfile, user_id, at=as_of)

    profile = await run_blocking(request, load)
    response.headers["ETag"] = etag(profile.version)
    return UserProfileState(
        id=profile.id,
        version=profile.version,
        name=profile.name,
        email=profile.email,
        hobbies=list(profile.hobbies),
        city=profile.city,
        country=profile.country,
        active=profile.active,
        created_on=profile.created_on,
        modified_on=profile.modified_on,
    )


@router.put("/{user_id}/name", response_model=Accepted)
async def rename(
    caller: Caller,
    user_id: Id,
    body: RenameUser,
    request: Request,
    headers: Headers,
) -> JSONResponse:
    require(caller, CONTEXT, Access.WRITE, owner=user_id)
    ctx = headers.context(request, body)
    result = await run_blocking(request, lambda: users(request).rename(ctx, user_id, body.name))
    return accepted(CONTEXT, result, headers)


@router.put("/{user_id}/email", response_model=Accepted)
async def change_email(
    caller: Caller,
    user_id: Id,
    body: ChangeEmail,
    request: Request,
    headers: Headers,
) -> JSONResponse:
    require(caller, CONTEXT, Access.WRITE, owner=user_id)
    ctx = headers.context(request, body)
    result = await run_blocking(
        request, lambda: users(request).change_email(ctx, user_id, body.email)
    )
    return accepted(CONTEXT, result, headers)


@router.post("/{user_id}/hobbies", response_model=Accepted)
async def add_hobby(
    caller: Caller,
    user_id: Id,
    body: AddHobby,
    request: Request,
    headers: Headers,
) -> JSONResponse:
    require(caller, CONTEXT, Access.WRITE, owner=user_id)
    ctx = headers.context(request, body)
    result = await run_blocking(request, lambda: users(request).add_hobby(ctx, user_id, body.hobby))
    return accepted(CONTEXT, result, headers)


# `:path`: the server decodes %2F before routing, so a hobby holding "/" spans segments.
@router.delete("/{user_id}/hobbies/{hobby:path}", response_model=Accepted)
async def remove_hobby(
    caller: Caller,
    user_id: Id,
    hobby: HobbyInPath,
    request: Request,
    headers: Headers,
) -> JSONResponse:
    require(caller, CONTEXT, Access.WRITE, owner=user_id)
    ctx = headers.context(request)
    result = await run_blocking(request, lambda: users(request).remove_hobby(ctx, user_id, hobby))
    return accepted(CONTEXT, result, headers)


@router.put("/{user_id}/location", response_model=Accepted)
async def change_location(
    caller: Caller,
    user_id: Id,
    body: ChangeLocation,
    request: Request,
    headers: Headers,
) -> JSONResponse:
    require(caller, CONTEXT, Access.WRITE, owner=user_id)
    ctx = headers.context(request, body)
    result = await run_blocking(
        request, lambda: users(request).change_location(ctx, user_id, body.city, body.country)
    )
    return accepted(CONTEXT, result, headers)


@router.post("/{user_id}/deactivate", response_model=Accepted)
async def deactivate(
    caller: Caller, user_id: Id, request: Request, headers: Headers
) -> JSONResponse:
    require(caller, CONTEXT, Access.WRITE, owner=user_id)
    ctx = headers.context(request)
    result = await run_blocking(request, lambda: users(request).deactivate(ctx, user_id))
    return accepted(CONTEXT, result, headers)


@router.post("/{user_id}/reactivate", response_model=Accepted)
async def reactivate(
    caller: Caller, user_id: Id, request: Request, headers: Headers
) -> JSONResponse:
    require(caller, CONTEXT, Access.WRITE)
    ctx = headers.context(request)
    result = await run_blocking(request, lambda: users(request).reactivate(ctx, user_id))
    return accepted(CONTEXT, result, headers)
