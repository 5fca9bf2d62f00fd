"""RFC 9457 problem details for the read API: every error response is `application/problem+json`.

`install_read_problem_handlers` covers the exceptions the read routes raise themselves, so the
routes keep their error format when they are included into another app (which brings its own
handlers for validation and HTTP errors, in the same format). `install_problem_handlers` adds
those generic handlers too, for the read API running on its own.
"""

import sqlite3
from collections.abc import Mapping
from typing import Any

import psycopg
import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"
READ_POSITION = "X-Read-Position"
RETRY_AFTER_SECONDS = "1"

TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    422: "Unprocessable content",
    503: "Service unavailable",
}

STORE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.errors.UndefinedTable,
    PoolTimeout,
    redis.ConnectionError,
    redis.TimeoutError,
    sqlite3.OperationalError,
)
"""Errors meaning a read store is unreachable, too slow, or not created yet (see `Runner`)."""


class ServiceUnavailable(Exception):
    """A read store is unreachable or did not answer in time: 503 with Retry-After."""


class InvalidParameter(Exception):
    """A request parameter that passed type checks but is still wrong (cursor, position, wait)."""

    def __init__(self, name: str, message: str, location: str = "query") -> None:
        super().__init__(message)
        self.field = f"{location}.{name}"
        self.message = message


class PositionNotReached(Exception):
    """Read-your-writes: the read models did not reach the requested position within the wait."""

    def __init__(self, wanted: str, reached: str, waited: float) -> None:
        super().__init__(
            f"the read models behind this endpoint are at {reached or 'nothing'}, not yet at"
            f" {wanted}, after waiting {waited:g} s; retry later or with a longer wait"
        )
        self.wanted = wanted
        self.reached = reached


def problem(
    request: Request,
    status: int,
    slug: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"/problems/{slug}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def invalid_input(request: Request, errors: list[dict[str, str]]) -> JSONResponse:
    fields = ", ".join(e["field"] for e in errors)
    return problem(request, 422, "validation-error", f"invalid input: {fields}", errors=errors)


async def _on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {"field": ".".join(str(part) for part in e["loc"]), "message": e["msg"]}
        for e in error.errors()
    ]
    return invalid_input(request, errors)


async def _on_invalid_parameter(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, InvalidParameter)
    return invalid_input(request, [{"field": error.field, "message": error.message}])


async def _on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
    return problem(request, error.status_code, slug, str(error.detail), headers=error.headers)


async def _on_position_not_reached(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, PositionNotReached)
    headers = {"Retry-After": RETRY_AFTER_SECONDS}
    if error.reached:
        headers[READ_POSITION] = error.reached
    return problem(
        request,
        503,
        "position-not-reached",
        str(error),
        headers=headers,
        position=error.wanted,
        reached=error.reached,
    )


async def _on_unavailable(request: Request, error: Exception) -> JSONResponse:
    return problem(
        request,
        503,
        "service-unavailable",
        f"a read store is unavailable or too slow: {error or type(error).__name__}",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def install_read_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(InvalidParameter, _on_invalid_parameter)
    app.add_exception_handler(PositionNotReached, _on_position_not_reached)
    app.add_exception_handler(ServiceUnavailable, _on_unavailable)


def install_problem_handlers(app: FastAPI) -> None:
    install_read_problem_handlers(app)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
