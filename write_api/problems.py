"""The write API's errors as RFC 9457 problem details: domain errors, outages, the unexpected."""

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from domain.errors import (
    AggregateNotFound,
    DomainError,
    IdempotencyKeyReused,
    InvalidValue,
    NotFoundAtTime,
    StaleVersion,
    UnknownReference,
    ValueTaken,
)
from eventlog.outages import STORE_OUTAGES
from runtime.http import problems as common
from runtime.http.deadlines import ServiceUnavailable
from runtime.http.problem_types import (
    IDEMPOTENCY_KEY_REUSED,
    INVALID_VALUE,
    NOT_FOUND,
    NOT_FOUND_AT_TIME,
    POSITION_NOT_REACHED,
    RULE_VIOLATED,
    UNKNOWN_REFERENCE,
    VALUE_TAKEN,
    VERSION_MISMATCH,
    ProblemType,
)
from runtime.http.problems import RETRY_AFTER_SECONDS, on_unavailable, problem
from write_api.replicas import ReplicaBehind

log = logging.getLogger("strata.write_api")
# Most specific first: the first matching class decides the problem type.
DOMAIN_PROBLEMS: Sequence[tuple[type[DomainError], ProblemType]] = (
    (NotFoundAtTime, NOT_FOUND_AT_TIME),
    (AggregateNotFound, NOT_FOUND),
    (StaleVersion, VERSION_MISMATCH),
    (IdempotencyKeyReused, IDEMPOTENCY_KEY_REUSED),
    (InvalidValue, INVALID_VALUE),
    (UnknownReference, UNKNOWN_REFERENCE),
    (ValueTaken, VALUE_TAKEN),
    (DomainError, RULE_VIOLATED),
)


async def _on_domain_error(request: Request, error: Exception) -> JSONResponse:
    for error_class, kind in DOMAIN_PROBLEMS:
        if isinstance(error, error_class):
            return problem(request, kind, str(error))
    raise error  # pragma: no cover - DomainError is the last entry


async def _on_unavailable(request: Request, error: Exception) -> JSONResponse:
    log.warning("store unavailable: %s", error, extra={"path": request.url.path})
    return await on_unavailable(request, error)


async def _on_replica_behind(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ReplicaBehind)
    return problem(
        request,
        POSITION_NOT_REACHED,
        str(error),
        headers={"Retry-After": RETRY_AFTER_SECONDS},
        position=error.wanted,
        reached=error.reached,
    )


def install_problem_handlers(app: FastAPI) -> None:
    common.install_problem_handlers(app, log)
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(ReplicaBehind, _on_replica_behind)
    unavailable_errors: tuple[type[Exception], ...] = (ServiceUnavailable, *STORE_OUTAGES)
    for unavailable in unavailable_errors:
        app.add_exception_handler(unavailable, _on_unavailable)
