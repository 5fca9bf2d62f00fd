"""What every HTTP service here shares: RFC 9457 problem details.

Every error response is `application/problem+json` with `type`, `title`, `status`, `detail`
and `instance`; validation errors add `errors`, one `{field, message}` per bad field (the first
`MAX_LISTED_ERRORS`; `errors_omitted` counts the rest). The types
are the catalog in `runtime.http.problem_types`.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from runtime.http.json_bodies import DuplicateMember
from runtime.http.openapi import PROBLEM_JSON, document_problems
from runtime.http.problem_types import (
    BAD_HEADER,
    BAD_REQUEST,
    CONTENT_TOO_LARGE,
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    SERVICE_UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION_ERROR,
    ProblemType,
    title_of,
)
from runtime.http.trace_headers import TraceHeaders

RETRY_AFTER_SECONDS = "1"

ORIGINAL_PATH = "x-envoy-original-path"
"""Where the gateway keeps the path a client asked for when its route rewrote it."""
MAX_LISTED_ERRORS = 20
"""The most bad fields a validation problem lists; it counts the others."""
HTTP_ERRORS = {
    kind.status: kind
    for kind in (NOT_FOUND, METHOD_NOT_ALLOWED, CONTENT_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE)
}
"""The problem type of an `HTTPException` by status (the body gate raises the 413 and 415:
`runtime.http.request_bodies`); any other status is a `BAD_HEADER`."""


def problem(
    request: Request,
    kind: ProblemType,
    detail: str,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem of type `kind`, with its status unless `status` says another."""
    status = status or kind.status
    body = {
        "type": kind.uri,
        "title": title_of(status),
        "status": status,
        "detail": detail,
        "instance": instance_of(request),
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def instance_of(request: Request) -> str:
    """The path the client asked for: behind the gateway, the one before its route stripped a
    prefix (`/read/users/1`, not `/users/1`), as in the gateway's own problems."""
    original = request.headers.get(ORIGINAL_PATH)
    return original.partition("?")[0] if original else request.url.path


def invalid_input(request: Request, errors: list[dict[str, str]]) -> JSONResponse:
    """A validation problem listing the first `MAX_LISTED_ERRORS` of `errors` (in `detail` and
    `errors`), and how many more there are (`errors_omitted`), so that the answer to a body of
    thousands of bad members stays small."""
    listed = errors[:MAX_LISTED_ERRORS]
    omitted = len(errors) - len(listed)
    detail = "invalid input: " + ", ".join(e["field"] for e in listed)
    if not omitted:
        return problem(request, VALIDATION_ERROR, detail, errors=listed)
    detail += f" and {omitted} more"
    return problem(request, VALIDATION_ERROR, detail, errors=listed, errors_omitted=omitted)


async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [_field_error(e) for e in error.errors()]
    return invalid_input(request, errors)


def _field_error(error: Mapping[str, Any]) -> dict[str, str]:
    """One validation error as `{field, message}`; a JSON syntax error is the body's, at the
    character where reading stopped (its location names that offset, not a field)."""
    if error["type"] == "json_invalid":
        why = error.get("ctx", {}).get("error", "JSON decode error")
        where = [f"at character {part}" for part in error["loc"][1:]]
        return {"field": "body", "message": " ".join([f"not a JSON document: {why}", *where])}
    return {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}


def _unparsable_body(error: HTTPException) -> dict[str, str] | None:
    """Why FastAPI could not parse a body (it answers 400 from the decoding error), if so."""
    cause = error.__cause__
    if error.status_code != 400 or cause is None:
        return None
    if isinstance(cause, DuplicateMember):
        return duplicate_member_error(cause)
    if isinstance(cause, UnicodeDecodeError):
        message = f"not valid UTF-8: byte {cause.start}"
    elif isinstance(cause, RecursionError):
        message = "JSON nested too deeply"
    else:  # the first clause of the reason: the rest is advice to a Python programmer
        message = f"not a JSON document: {str(cause).split(';')[0] or type(cause).__name__}"
    return {"field": "body", "message": message}


def duplicate_member_error(error: DuplicateMember) -> dict[str, str]:
    return {"field": error.field, "message": f"{error}: the body is ambiguous"}


async def on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    unparsable = _unparsable_body(error)
    if unparsable is not None:  # the same answer as for a JSON syntax error: the body is input
        return invalid_input(request, [unparsable])
    kind = HTTP_ERRORS.get(error.status_code, BAD_HEADER)
    return problem(
        request, kind, str(error.detail), status=error.status_code, headers=error.headers
    )


async def on_duplicate_member(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DuplicateMember)
    return invalid_input(request, [duplicate_member_error(error)])


def malformed_header(request: Request, why: str) -> JSONResponse:
    return problem(request, BAD_HEADER, why)


def unavailable(request: Request, detail: str) -> JSONResponse:
    """A `service-unavailable` problem: retry after `RETRY_AFTER_SECONDS`."""
    return problem(
        request, SERVICE_UNAVAILABLE, detail, headers={"Retry-After": RETRY_AFTER_SECONDS}
    )


async def on_unavailable(request: Request, error: Exception) -> JSONResponse:
    return unavailable(
        request, f"a store is unavailable or too slow: {error or type(error).__name__}"
    )


async def on_client_disconnect(request: Request, error: Exception) -> JSONResponse:
    """The client closed the connection before its body had arrived (a proxy's timeout, a
    cancelled request): no one reads the answer, and nothing went wrong here, so it is not
    logged as an unexpected error."""
    return problem(request, BAD_REQUEST, "the client closed the connection before its body")


def on_unexpected(log: logging.Logger) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """The handler of an unexpected error: logged to `log` with its traceback, answered as a 500
    problem that tells nothing of it (its text may hold what a client must not see)."""

    async def handle(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error", extra={"path": request.url.path})
        return problem(request, INTERNAL_ERROR, "an unexpected error occurred; it was logged")

    return handle


def install_problem_handlers(
    app: FastAPI, log: logging.Logger, own_problems: Sequence[ProblemType] = ()
) -> None:
    """What every API answers in problem details: malformed requests (a malformed trace header
    on any route too), HTTP errors, and the unexpected (logged to `log`); and the OpenAPI
    document of its problems (the catalog's and `own_problems`) and headers."""

    app.add_exception_handler(Exception, on_unexpected(log))
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(DuplicateMember, on_duplicate_member)
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)
    app.add_middleware(TraceHeaders, refuse=malformed_header)
    document_problems(app, own_problems)
