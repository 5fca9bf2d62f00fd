"""Identity's problems beyond the shared catalog: OAuth2 errors (with RFC 6749's `error` code as
a member), missing or insufficient bearer tokens, and accounts that exist already."""

import logging
from collections.abc import Callable, Coroutine, Sequence
from sqlite3 import OperationalError as SqliteUnavailable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg import OperationalError as PostgresUnavailable
from psycopg_pool import PoolTimeout

from identity.accounts import AccountExists, IdempotencyKeyReused, NoAccount, WrongPassword
from identity.forms import MalformedForm
from identity.grants import InvalidClient, InvalidGrant
from identity.passwords import InvalidPassword
from identity.profiles import ProfileRefused, ProfilesUnavailable
from identity.throttle import SignInThrottled
from runtime.http import problems as common
from runtime.http.deadlines import ServiceUnavailable
from runtime.http.openapi import PROBLEM_JSON
from runtime.http.problem_types import (
    FORBIDDEN,
    IDEMPOTENCY_KEY_REUSED,
    UNAUTHENTICATED,
    Operation,
    ProblemType,
)
from runtime.http.problems import instance_of, problem

log = logging.getLogger("strata.identity")


def _token_endpoint(operation: Operation) -> bool:
    return operation.path == "/token"


def _creates_accounts(operation: Operation) -> bool:
    return operation.path in ("/sign-up", "/accounts")


def _checks_passwords(operation: Operation) -> bool:
    return operation.path in ("/token", "/password")


INVALID_REQUEST = ProblemType(
    400,
    "invalid-request",
    "a token request that is not a well-formed form, or lacks a parameter (`error`:"
    " `invalid_request`)",
    _token_endpoint,
)
UNSUPPORTED_GRANT_TYPE = ProblemType(
    400,
    "unsupported-grant-type",
    "a `grant_type` other than password, refresh_token, client_credentials",
    _token_endpoint,
)
INVALID_GRANT = ProblemType(
    401,
    "invalid-grant",
    "wrong credentials, or a refresh token unknown, expired, revoked or reused",
    _token_endpoint,
)
INVALID_CLIENT = ProblemType(
    401, "invalid-client", "a wrong client id or client secret", _token_endpoint
)
ACCOUNT_EXISTS = ProblemType(
    409, "account-exists", "the address or the profile has an account", _creates_accounts
)
SIGN_IN_THROTTLED = ProblemType(
    429,
    "sign-in-throttled",
    "too many password attempts for this account without a success: its password is not"
    " checked until `Retry-After` (`error`: `slow_down` at /token)",
    _checks_passwords,
    retry_after=True,
)
WRONG_PASSWORD = ProblemType(
    403,
    "wrong-password",
    "the current password given is not the account's",
    lambda operation: operation.path == "/password",
)
IDENTITY_PROBLEMS = (
    INVALID_REQUEST,
    UNSUPPORTED_GRANT_TYPE,
    INVALID_GRANT,
    INVALID_CLIENT,
    ACCOUNT_EXISTS,
    SIGN_IN_THROTTLED,
    WRONG_PASSWORD,
)


class NotAuthenticated(Exception):
    pass


class NotAllowed(Exception):
    pass


class UnsupportedGrantType(Exception):
    pass


Handler = Callable[[Request, Exception], Coroutine[Any, Any, JSONResponse]]


def _answer(
    kind: ProblemType, error_code: str | None = None, headers: dict[str, str] | None = None
) -> Handler:
    async def handle(request: Request, error: Exception) -> JSONResponse:
        if error_code is None:
            return problem(request, kind, str(error), headers=headers)
        return problem(request, kind, str(error), headers=headers, error=error_code)

    return handle


async def _on_profile_refused(request: Request, error: Exception) -> JSONResponse:
    """The users service's problem, as it gave it: it names what was wrong with the input."""
    assert isinstance(error, ProfileRefused)
    body = {**error.problem, "instance": instance_of(request)}
    return JSONResponse(body, status_code=error.status, media_type=PROBLEM_JSON)


async def _on_invalid_password(request: Request, error: Exception) -> JSONResponse:
    return common.invalid_input(request, [{"field": "body.password", "message": str(error)}])


async def _on_throttled(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, SignInThrottled)
    headers = {"Retry-After": str(error.retry_after)}
    if request.url.path == "/token":
        return problem(request, SIGN_IN_THROTTLED, str(error), headers=headers, error="slow_down")
    return problem(request, SIGN_IN_THROTTLED, str(error), headers=headers)


async def _on_unavailable(request: Request, error: Exception) -> JSONResponse:
    log.warning("unavailable: %s", error, extra={"path": request.url.path})
    return await common.on_unavailable(request, error)


HANDLERS: Sequence[tuple[type[Exception], Handler]] = (
    (MalformedForm, _answer(INVALID_REQUEST, "invalid_request")),
    (UnsupportedGrantType, _answer(UNSUPPORTED_GRANT_TYPE, "unsupported_grant_type")),
    (InvalidGrant, _answer(INVALID_GRANT, "invalid_grant", {"WWW-Authenticate": "Bearer"})),
    (
        InvalidClient,
        _answer(INVALID_CLIENT, "invalid_client", {"WWW-Authenticate": 'Basic realm="strata"'}),
    ),
    (NotAuthenticated, _answer(UNAUTHENTICATED, None, {"WWW-Authenticate": "Bearer"})),
    (NotAllowed, _answer(FORBIDDEN)),
    (NoAccount, _answer(FORBIDDEN)),
    (WrongPassword, _answer(WRONG_PASSWORD)),
    (SignInThrottled, _on_throttled),
    (AccountExists, _answer(ACCOUNT_EXISTS)),
    (IdempotencyKeyReused, _answer(IDEMPOTENCY_KEY_REUSED)),
    (InvalidPassword, _on_invalid_password),
    (ProfileRefused, _on_profile_refused),
)
UNAVAILABLE = (
    ServiceUnavailable,
    ProfilesUnavailable,
    PostgresUnavailable,
    SqliteUnavailable,
    PoolTimeout,
)


def install_problem_handlers(app: FastAPI) -> None:
    common.install_problem_handlers(app, log, IDENTITY_PROBLEMS)
    for error_class, handler in HANDLERS:
        app.add_exception_handler(error_class, handler)
    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, _on_unavailable)
