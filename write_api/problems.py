"""The write API's errors as RFC 9457 problem details: domain errors, outages, the unexpected."""

import logging
from collections.abc import Sequence

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
    NotFoundAtTime,
    StaleVersion,
    ValueTaken,
)
from eventlog.http import (
    ServiceUnavailable,
    on_http_error,
    on_unavailable,
    on_validation_error,
    problem,
)

log = logging.getLogger("strata.write_api")
# Most specific first: the first matching class decides the status.
DOMAIN_STATUSES: Sequence[tuple[type[DomainError], int, str]] = (
    (NotFoundAtTime, 404, "not-found-at-time"),
    (AggregateNotFound, 404, "not-found"),
    (StaleVersion, 412, "version-mismatch"),
    (IdempotencyKeyReused, 422, "idempotency-key-reused"),
    (InvalidValue, 422, "invalid-value"),
    (ValueTaken, 409, "value-taken"),
    (DomainError, 409, "rule-violated"),
)


async def _on_domain_error(request: Request, error: Exception) -> JSONResponse:
    for error_class, status, slug in DOMAIN_STATUSES:
        if isinstance(error, error_class):
            return problem(request, status, slug, str(error))
    raise error  # pragma: no cover - DomainError is the last entry


async def _on_unavailable(request: Request, error: Exception) -> JSONResponse:
    log.warning("store unavailable: %s", error, extra={"path": request.url.path})
    return await on_unavailable(request, error)


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", extra={"path": request.url.path})
    return problem(request, 500, "internal-error", "an unexpected error occurred; it was logged")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(HTTPException, on_http_error)
    for unavailable in (ServiceUnavailable, OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(unavailable, _on_unavailable)
