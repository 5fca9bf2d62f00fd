"""The read routes, for the read API's own app or for inclusion into another one.

`include_read_routes(app, settings, prefix)` adds every registered context's read endpoints
(its declaration's `read_router`) under `prefix`, with /healthz, /readyz and /metrics, the
handlers for the read routes' own errors, and a lifespan (merged into the app's by FastAPI) that
opens the read stores on start and closes them on shutdown. Beside the write API, whose
`GET /users/{id}` and `GET /orders/{id}` answer from the event store, the read routes go under
`/read`::

    app = write_api.app.create_app(settings)           # its own lifespan is kept
    include_read_routes(app, settings, prefix="/read")  # GET /read/users/{id}, /read/metrics, ...
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry

from contexts.registered import REGISTRY
from contexts.registry import Registry
from read_api.problems import install_read_problem_handlers
from read_api.resources import attach_read_side, read_side
from runtime.auth.http import authenticator, install_auth
from runtime.http.problem_types import NOT_READY
from runtime.http.problems import problem
from runtime.rate_limits import install_rate_limits
from runtime.settings import CommonSettings

ops = APIRouter(tags=["health"])


@ops.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@ops.get("/readyz", response_model=None)
async def readyz(request: Request) -> JSONResponse | dict[str, object]:
    """Every read store answers and holds the read models; `auth` says whether requests are
    authenticated (`jwt`) or not (`insecure`). Served from a read replica, `replica` says how
    far behind it is, and a lag over `STRATA_READ_REPLICA_MAX_LAG_SECONDS` is not ready."""
    side = read_side(request)
    failures = await side.unreachable()
    if failures:
        detail = "; ".join(f"{name}: {error}" for name, error in failures.items())
        return problem(request, NOT_READY, f"read stores unreachable: {detail}")
    ready: dict[str, object] = {"status": "ready", "auth": side.settings.auth}
    if (status := await side.replica_status()) is not None:
        ready["replica"] = status.as_json()
    return ready


@ops.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of the read routes (requests, latency, read-your-writes waits) and of
    the read replica, if any (collected off the event loop: they may ask the stores)."""
    return await asyncio.to_thread(read_side(request).metrics.exposition)


def read_routes(
    settings: CommonSettings,
    *,
    with_ops: bool = True,
    registry: CollectorRegistry | None = None,
    contexts: Registry = REGISTRY,
) -> APIRouter:
    """The read routes of `contexts`, with a lifespan that attaches the read side to the app
    including them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with attach_read_side(app, settings, contexts, registry):
            yield

    router = APIRouter(lifespan=lifespan)
    for routes in contexts.read_routers:
        router.include_router(routes)
    if with_ops:
        router.include_router(ops)
    return router


def include_read_routes(
    app: FastAPI,
    settings: CommonSettings,
    prefix: str = "",
    *,
    with_ops: bool = True,
    registry: CollectorRegistry | None = None,
    contexts: Registry = REGISTRY,
) -> None:
    """Serve the read API of `contexts` (the registered ones) from `app` under `prefix` ("" or
    such as "/read").

    `with_ops=False` leaves out /healthz, /readyz and /metrics (the host may have its own;
    `ReadSide.unreachable` and `ReadSide.metrics` are on `app.state.read_side`). `registry`
    puts the read metrics into the host's Prometheus registry instead of one of their own."""
    install_read_problem_handlers(app)
    if not hasattr(app.state, "authenticator"):  # a host without its own: the settings' one
        install_auth(app, authenticator(settings))
    install_rate_limits(app, settings)  # a host that has its own keeps them
    routes = read_routes(settings, with_ops=with_ops, registry=registry, contexts=contexts)
    app.include_router(routes, prefix=prefix)
