"""RFC 9457 problem details: every error response of the API is `application/problem+json`."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException

from domain.errors import (
    AggregateNotFound,
    DomainError,
    IdempotencyKeyReused,
    InvalidValue,
    StaleVersion,
    ValueTaken,
)

log = logging.getLogger("strata.write_api")
PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "1"

# Most specific first: the first matching class decides the status.
DOMAIN_STATUSES: Sequence[tuple[type[DomainError], int, str]] = (
    (AggregateNotFound, 404, "not-found"),
    (StaleVersion, 412, "version-mismatch"),
    (IdempotencyKeyReused, 422, "idempotency-key-reused"),
    (InvalidValue, 422, "invalid-value"),
    (ValueTaken, 409, "value-taken"),
    (DomainError, 409, "rule-violated"),
)

TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
    503: "Service unavailable",
}


class ServiceUnavailable(Exception):
    """A dependency did not answer in time."""


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


def _field_errors(error: RequestValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(part) for part in e["loc"]), "message": e["msg"]}
        for e in error.errors()
    ]


async def _on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = _field_errors(error)
    fields = ", ".join(e["field"] for e in errors)
    return problem(request, 422, "validation-error", f"invalid input: {fields}", errors=errors)


async def _on_domain_error(request: Request, error: Exception) -> JSONResponse:
    for error_class, status, slug in DOMAIN_STATUSES:
        if isinstance(error, error_class):
            return problem(request, status, slug, str(error))
    raise error  # pragma: no cover - DomainError is the last entry


async def _on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
    return problem(request, error.status_code, slug, str(error.detail), headers=error.headers)


async def _on_unavailable(request: Request, error: Exception) -> JSONResponse:
    log.warning("store unavailable: %s", error, extra={"path": request.url.path})
    return problem(
        request,
        503,
        "service-unavailable",
        f"a backing store is unavailable or too slow: {error or type(error).__name__}",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", extra={"path": request.url.path})
    return problem(request, 500, "internal-error", "an unexpected error occurred; it was logged")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    for unavailable in (ServiceUnavailable, OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(unavailable, _on_unavailable)
