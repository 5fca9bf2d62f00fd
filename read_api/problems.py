"""RFC 9457 problem details for the read API: every error response is `application/problem+json`.

`install_read_problem_handlers` covers the exceptions the read routes raise themselves, so the
routes keep their error format when they are included into another app (which brings its own
handlers for validation, HTTP errors and the unexpected, in the same format, and documents them:
`runtime.http.problems.install_problem_handlers`). `install_problem_handlers` adds those too,
for the read API running on its own.
"""

import logging
import sqlite3

import psycopg
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from runtime.http import problems as common
from runtime.http.deadlines import ServiceUnavailable
from runtime.http.problem_types import POSITION_NOT_REACHED
from runtime.http.problems import RETRY_AFTER_SECONDS, invalid_input, on_unavailable, problem

log = logging.getLogger("strata.read_api")
READ_POSITION = "X-Read-Position"

STORE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.errors.UndefinedTable,
    PoolTimeout,
    redis.ConnectionError,
    redis.TimeoutError,
    sqlite3.OperationalError,
)
"""Errors meaning a read store is unreachable, too slow, or not created yet (see `Runner`)."""


class InvalidParameter(Exception):
    """A request parameter that passed type checks but is still wrong (cursor, position, wait)."""

    def __init__(self, name: str, message: str, location: str = "query") -> None:
        super().__init__(message)
        self.field = f"{location}.{name}"
        self.message = message


class PositionNotReached(Exception):
    """Read-your-writes: the read models did not reach the requested position within the wait."""

    def __init__(self, wanted: str, reached: str, waited: float, why: str = "") -> None:
        """`why`: what holds the models back, if known (a read replica's lag)."""
        because = f" ({why})" if why else ""
        super().__init__(
            f"the read models behind this endpoint are at {reached or 'nothing'}, not yet at"
            f" {wanted}, after waiting {waited:g} s{because}; retry later or with a longer wait"
        )
        self.wanted = wanted
        self.reached = reached


async def _on_invalid_parameter(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, InvalidParameter)
    return invalid_input(request, [{"field": error.field, "message": error.message}])


async def _on_position_not_reached(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, PositionNotReached)
    headers = {"Retry-After": RETRY_AFTER_SECONDS}
    if error.reached:
        headers[READ_POSITION] = error.reached
    return problem(
        request,
        POSITION_NOT_REACHED,
        str(error),
        headers=headers,
        position=error.wanted,
        reached=error.reached,
    )


def install_read_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(InvalidParameter, _on_invalid_parameter)
    app.add_exception_handler(PositionNotReached, _on_position_not_reached)
    app.add_exception_handler(ServiceUnavailable, on_unavailable)


def install_problem_handlers(app: FastAPI) -> None:
    common.install_problem_handlers(app, log)
    install_read_problem_handlers(app)
