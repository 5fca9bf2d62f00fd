"""Admission control: a bound on the commands one process has in flight.

A service that queues what it cannot serve answers late for everyone: past its capacity the
queue grows until requests time out after seconds, still holding their place. Instead, a command
(POST, PUT, PATCH, DELETE) that arrives while `limit` commands are in flight in this process is
answered 503 with `Retry-After` at once, before anything reads its body or token, and nothing is
done for it; the commands admitted keep a short queue, and their latency with it. Each process
(uvicorn worker) counts its own: it runs one event loop, so the count needs no lock.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.http.problem_types import SERVICE_UNAVAILABLE
from runtime.http.problems import RETRY_AFTER_SECONDS, problem
from runtime.http.request_bodies import COMMAND_METHODS


class Admission:
    """ASGI middleware admitting at most `limit` commands at once; queries pass untouched."""

    def __init__(self, app: ASGIApp, limit: int, registry: CollectorRegistry) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0
        self._refused = Counter(
            "strata_commands_refused",
            "Commands answered 503 at once: the process had its bound of commands in flight",
            registry=registry,
        )
        in_flight = Gauge(
            "strata_commands_in_flight", "Commands this process is handling", registry=registry
        )
        in_flight.set_function(lambda: self.in_flight)
        bound = Gauge(
            "strata_commands_in_flight_limit",
            "Commands this process handles at once at most",
            registry=registry,
        )
        bound.set(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in COMMAND_METHODS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self._refused.inc()
            detail = f"{self.limit} commands are in flight already; nothing was done, retry later"
            refusal = problem(
                Request(scope),
                SERVICE_UNAVAILABLE,
                detail,
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
            await refusal(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
