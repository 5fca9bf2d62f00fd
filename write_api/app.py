"""The write API's composition root: settings -> event stores -> services -> FastAPI app.

One process serves every registered context, or the one named by `--context`
(`STRATA_WRITE_CONTEXT`, how the option reaches uvicorn's worker processes). With
`STRATA_LIVE_SETTINGS_FILE` each worker process follows that file (hot reload: log level, feature
flags, breaker thresholds, rate limits; runtime/live_reload.py). Every command and query route is
rate limited per caller (runtime/rate_limits.py). It serves at once, PostgreSQL up or not: until
its event stores open (`runtime.opening`), `/readyz` and every command answer 503.
"""

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from functools import partial
from typing import cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings
from eventlog.group_commit import GroupCommitter
from eventlog.jobs import Clock
from eventlog.outages import POOL_LOGGER, STORE_OUTAGES
from eventlog.parked_jobs import ParkedJobs
from eventlog.stores import Services, build_services, sqlite_path
from runtime.auth.http import authenticator, install_auth, register_auth_mode
from runtime.auth.jwks import KeySource
from runtime.auth.tokens import service_tokens
from runtime.data_dir import check_data_dir, check_sqlite_files
from runtime.http.admission import Admission
from runtime.http.deadlines import Runner
from runtime.http.head import HeadAsGet
from runtime.http.preflight import add_start_check
from runtime.http.problem_types import NOT_READY
from runtime.http.problems import problem
from runtime.http.request_bodies import JsonBodies
from runtime.http.telemetry import NO_NATIVE_TELEMETRY
from runtime.http.waiting import install_waiting_gate
from runtime.live_reload import LiveReloadMetrics, following, set_log_level
from runtime.live_settings import LiveSettings, adopt_live_checks, attach_live_settings
from runtime.opening import Opening
from runtime.process_metrics import show_process_metrics
from runtime.rate_limits import install_rate_limits
from runtime.server_process import configure_server_process
from runtime.settings import settings_model
from write_api.command_http import run_blocking
from write_api.metrics import (
    GroupCommitCollector,
    ParkedJobsCollector,
    RequestMetrics,
    metrics_endpoint,
)
from write_api.problems import install_problem_handlers
from write_api.replica_feeds import ReplicaCollector, running_feeds
from write_api.workers import running_workers

SERVED_CONTEXT = "STRATA_WRITE_CONTEXT"

DESCRIPTION = """Commands of the contexts this service serves (user profiles, orders, payments,
shipments, fulfilments). Every command appends events to its context's event store and answers
`{id, version, position}`. Errors are RFC 9457 `application/problem+json`. Send
`Idempotency-Key` to make a retry safe and `If-Match` with the ETag of a GET to refuse a command
when the aggregate has moved on."""


Extension = Callable[[FastAPI, Services], AbstractAsyncContextManager[None]]
"""Runs beside the write API for its lifetime, given its services: how a composition root that
knows more (the embedded all-in-one process) adds the fan-out without this package knowing it."""


def create_app(
    settings: Settings | None = None,
    extensions: Sequence[Extension] = (),
    contexts: Registry = REGISTRY,
    clock: Clock | None = None,
    keys: KeySource | None = None,
) -> FastAPI:
    """The write API of these contexts: each one's store, application and commands. Tokens are
    checked against the JWKS of the settings, or against `keys` when given."""
    if settings is None:  # called by uvicorn in a server process: that process logs JSON lines
        served = os.environ.get(SERVED_CONTEXT)
        if served:
            contexts = contexts.only(served)
        settings = settings_model(contexts.names)()
        configure_server_process(settings.log_level)

    registry = CollectorRegistry()
    show_process_metrics(registry)
    opening = _store_opening(settings, contexts)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.runner = runner = Runner(settings.worker_threads, settings.request_timeout)

        def serve(services: Services) -> AbstractAsyncContextManager[None]:
            app.state.services = services
            return _running_beside(app, settings, contexts, registry, clock, extensions)

        try:
            async with opening.serving(serve):
                yield
        finally:
            runner.close()

    app = FastAPI(
        title="strata write API",
        telemetry=NO_NATIVE_TELEMETRY,
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,  # behind the gateway a redirect would drop its route's prefix
    )
    install_waiting_gate(app, opening)
    auth = authenticator(settings, keys)
    install_auth(app, auth)
    register_auth_mode(registry, auth.insecure)
    app.add_middleware(JsonBodies, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        Admission,
        ceiling=settings.commands_in_flight_limit,
        target_seconds=settings.admission_target_ms / 1000,
        floor=settings.min_commands_in_flight,
        registry=registry,
    )
    app.add_middleware(RequestMetrics, registry=registry)
    app.add_route("/metrics", metrics_endpoint(registry), include_in_schema=False)
    install_problem_handlers(app)
    app.add_middleware(HeadAsGet)
    install_rate_limits(app, settings, registry=registry)
    if settings.mode == "embedded":
        add_start_check(app, partial(check_data_dir, settings.data_dir))
        stores = {f"the {name} event store": sqlite_path(settings, name) for name in contexts.names}
        add_start_check(app, partial(check_sqlite_files, stores))
    for context in contexts:
        app.include_router(context.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=None)
    async def readyz(request: Request) -> JSONResponse | dict[str, str]:
        """Every event store answers; `auth` says whether requests are authenticated (`jwt`) or
        not (`insecure`)."""
        if opening.waiting_for is not None:
            return problem(request, NOT_READY, opening.waiting_for)
        services = request.app.state.services.all()
        outcomes = await asyncio.gather(  # at once: each unreachable store waits its timeout
            *(run_blocking(request, service.side_records.ping) for service in services),
            return_exceptions=True,
        )
        failures = {
            service.name: str(outcome) or type(outcome).__name__
            for service, outcome in zip(services, outcomes, strict=True)
            if isinstance(outcome, Exception)
        }
        if failures:
            detail = "; ".join(f"{name}: {error}" for name, error in failures.items())
            return problem(request, NOT_READY, f"event stores unreachable: {detail}")
        return {"status": "ready", "auth": settings.auth}

    return app


def _store_opening(settings: Settings, contexts: Registry) -> Opening[Services]:
    """The event stores of `contexts`, waited for while PostgreSQL is down (the embedded mode's
    SQLite files fail the start instead, as any other error does)."""
    names = contexts.names
    what = f"the {names[0]} event store" if len(names) == 1 else "the event stores"
    return Opening(
        what,
        partial(build_services, settings, contexts),
        Services.close,
        outages=STORE_OUTAGES if settings.mode == "stack" else (),
        quiet=(POOL_LOGGER,),
    )


@asynccontextmanager
async def _running_beside(
    app: FastAPI,
    settings: Settings,
    contexts: Registry,
    registry: CollectorRegistry,
    clock: Clock | None,
    extensions: Sequence[Extension],
) -> AsyncIterator[None]:
    """What runs beside the requests: the replica feeds, the job workers (following the live
    settings, with this process's service token), the live-settings file and the extensions."""
    services: Services = app.state.services
    async with AsyncExitStack() as running:
        feeds = await running.enter_async_context(running_feeds(settings, services, contexts))
        app.state.replica_feeds = feeds
        running.enter_context(_registered(registry, _committers_collector(services)))
        running.enter_context(_registered(registry, ReplicaCollector(feeds)))
        running.enter_context(_registered(registry, _parked_jobs_collector(services, contexts)))
        live = LiveSettings(settings)
        adopt_live_checks(app, live)
        attach_live_settings(app, live)
        live.on_change({"log_level"}, set_log_level)
        tokens = await running.enter_async_context(service_tokens(settings))
        await running.enter_async_context(
            running_workers(live, services, contexts, registry, tokens, clock)
        )
        if settings.live_settings_file is not None:
            metrics = LiveReloadMetrics(registry)
            await running.enter_async_context(following(settings.live_settings_file, live, metrics))
        for extension in extensions:
            await running.enter_async_context(extension(app, services))
        yield


def _committers_collector(services: Services) -> GroupCommitCollector:
    return GroupCommitCollector(
        {s.name: s.committer for s in services.all() if isinstance(s.committer, GroupCommitter)}
    )


def _parked_jobs_collector(services: Services, contexts: Registry) -> ParkedJobsCollector:
    kinds = {c.name: [w.kind for w in c.workers] for c in contexts if c.workers}
    stores = {name: cast(ParkedJobs, services[name].recorder) for name in kinds}
    return ParkedJobsCollector(stores, kinds)


@contextmanager
def _registered(registry: CollectorRegistry, collector: Collector) -> Iterator[None]:
    registry.register(collector)
    try:
        yield
    finally:
        registry.unregister(collector)
