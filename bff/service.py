"""What both BFF apps are made of: a lifespan holding an `httpx.AsyncClient` to the read API,
rate limits per caller and route, live settings, problem answers (their own 401 and 403, and
the read API's refusals relayed), and /healthz, /readyz and /metrics.

Breaker thresholds, rate limits, the log level and feature flags change while it runs, in every
worker (`install_live_settings`: the config sidecar's file, docs/config.md).

A BFF is ready while it runs: a downstream that is down makes sections unavailable, not the
BFF, so /readyz reports the read API's readiness without failing on it.
"""

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from bff.downstream import Breakers, ReadApi, Refused
from bff.settings import BffSettings
from runtime.auth.http import authenticator, install_auth
from runtime.http.head import HeadAsGet
from runtime.http.openapi import PROBLEM_JSON
from runtime.http.problem_types import FORBIDDEN, NOT_FOUND, UNAUTHENTICATED
from runtime.http.problems import install_problem_handlers, instance_of
from runtime.http.query_string import QueryCheckedRoute
from runtime.http.telemetry import NO_NATIVE_TELEMETRY
from runtime.live_reload import install_live_settings
from runtime.live_settings import LiveSettings, live_settings_of
from runtime.process_metrics import show_process_metrics
from runtime.rate_limits import RateLimitedRoute, install_rate_limits
from runtime.resilience import BREAKER_SETTINGS

log = logging.getLogger("strata.bff")

CALLER_PROBLEMS = {"x-problems": [UNAUTHENTICATED.slug, FORBIDDEN.slug]}
"""The `openapi_extra` of a route taking the `Caller`."""
USER_PROBLEMS = {"x-problems": [UNAUTHENTICATED.slug, FORBIDDEN.slug, NOT_FOUND.slug]}
"""... of a route about a user, who may be unknown to the read model (404)."""


class BffRoute(QueryCheckedRoute, RateLimitedRoute):
    """The route class of every BFF route, as the read API's: its query parameters checked on
    the raw query string (undecodable or repeated: a 422 naming it), and rate limited per
    caller."""


ops = APIRouter(tags=["health"])


@ops.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@ops.get("/readyz")
async def readyz(request: Request) -> dict[str, str]:
    """Ready to answer; `read_api` says whether the read API can serve now: `ready`,
    `not-ready` (it answers, but a read store of its is down) or `unreachable`. Its sections
    are unavailable while it cannot."""
    return {"status": "ready", "read_api": await read_api(request).readiness()}


@ops.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus metrics: breaker states per downstream section, rate-limit checks."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def read_api(request: Request) -> ReadApi:
    found: ReadApi = request.app.state.read_api
    return found


def feature_on(request: Request, flag: str, *, default: bool = True) -> bool:
    """Whether the feature flag is on in the live settings in force (docs/config.md)."""
    live = live_settings_of(request.app)
    if live is None:
        raise RuntimeError("the BFF's live settings are not running (install_live_settings)")
    return live.current.feature_flags.get(flag, default)


def _follow_breakers(app: FastAPI, live: LiveSettings) -> None:
    read_api: ReadApi = app.state.read_api
    live.on_change(BREAKER_SETTINGS, read_api.breakers.follow)


def create_bff(
    name: str, description: str, settings: BffSettings, routers: Iterable[APIRouter]
) -> FastAPI:
    """A BFF app serving `routers`; nothing connects until it starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.bff_timeout_seconds)
        async with httpx.AsyncClient(timeout=timeout) as client:
            breakers = Breakers(settings, prefix="read-api")
            base_url = str(settings.read_api_url)
            app.state.read_api = ReadApi(
                base_url,
                client,
                breakers,
                settings.bff_timeout_seconds,
                default_wait=settings.read_wait_default_seconds,
            )
            yield

    app = FastAPI(
        title=f"strata {name} BFF",
        telemetry=NO_NATIVE_TELEMETRY,
        description=description,
        lifespan=lifespan,
        redirect_slashes=False,  # behind the gateway a redirect would drop its route's prefix
    )
    app.state.settings = settings
    install_problem_handlers(app, log)
    app.add_middleware(HeadAsGet)
    install_auth(app, authenticator(settings))
    app.add_exception_handler(Refused, _on_refused)
    install_rate_limits(app, settings)
    show_process_metrics(REGISTRY)
    for router in routers:
        app.include_router(router)
    app.include_router(ops)
    install_live_settings(app, settings, lambda _: REGISTRY, _follow_breakers)
    return app


async def _on_refused(request: Request, error: Exception) -> JSONResponse:
    """The read API's refusal, as its answer to this request."""
    assert isinstance(error, Refused)
    body = {**error.body, "instance": instance_of(request)}
    return JSONResponse(
        body, status_code=error.status, media_type=PROBLEM_JSON, headers=error.headers
    )
