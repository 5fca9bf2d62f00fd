"""Prometheus metrics of the read API, in a registry the app owns (several apps per process
stay apart). `MeteredRoute` times every read route, so the metrics are the same whether the
routes run in their own app or are included into another one."""

import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as render
from starlette.exceptions import HTTPException

from read_api.problems import InvalidParameter, PositionNotReached
from runtime.auth.http import Unauthenticated
from runtime.auth.jwks import KeysUnavailable
from runtime.auth.policy import Forbidden
from runtime.http.deadlines import ServiceUnavailable

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ReadMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "strata_read_requests",
            "Read API requests by endpoint (route template) and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "strata_read_request_seconds",
            "Read API request latency by endpoint, read-your-writes waits included.",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.waits = Counter(
            "strata_read_waits",
            "Read-your-writes waits by outcome (reached, timeout, or refused: too many waiting).",
            ["outcome"],
            registry=self.registry,
        )
        self.waiting = Gauge(
            "strata_read_waiting",
            "Reads waiting now for the read models to reach their `position`.",
            registry=self.registry,
        )

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint, method).observe(seconds)

    def exposition(self) -> Response:
        return Response(render(self.registry), media_type=CONTENT_TYPE_LATEST)


def status_of(error: Exception) -> int:
    if isinstance(error, HTTPException):
        return error.status_code
    if isinstance(error, RequestValidationError | InvalidParameter):
        return 422
    if isinstance(error, PositionNotReached | ServiceUnavailable | KeysUnavailable):
        return 503
    if isinstance(error, Unauthenticated):
        return 401
    if isinstance(error, Forbidden):
        return 403
    return 500


class MeteredRoute(APIRoute):
    """An APIRoute that counts and times its requests in the app's `ReadMetrics`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        endpoint = self.path_format

        async def metered(request: Request) -> Response:
            metrics: ReadMetrics = request.app.state.read_side.metrics
            started = time.perf_counter()
            try:
                response = await handler(request)
            except Exception as error:
                metrics.observe(endpoint, request.method, status_of(error), _since(started))
                raise
            metrics.observe(endpoint, request.method, response.status_code, _since(started))
            return response

        return metered


def _since(started: float) -> float:
    return time.perf_counter() - started
