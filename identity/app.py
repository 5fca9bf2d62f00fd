"""The identity service's composition root: settings -> database, issuer, grants, accounts,
the users service's client, the feed of the users' address changes (`identity.following`) ->
FastAPI app, following its live settings (log level, feature flags; runtime/live_reload.py).
Nothing connects before the app starts, and it serves at once: until the database is prepared
(`runtime.opening`), `/readyz` and every route that needs it answer 503.

`create_app(settings)` is also how another process mounts identity in-process (the embedded
default, tests); `profiles` replaces the HTTP client of the users service there.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from eventlog.outages import POOL_LOGGER
from identity import discovery, endpoints
from identity.callers import rate_limit_caller
from identity.database import DATABASE_OUTAGES
from identity.following import FollowedPosition, following_users
from identity.issuer import Clock, system_clock
from identity.problems import install_problem_handlers
from identity.profiles import SERVICE_SUBJECT, USERS_SCOPE, HttpProfiles, NoProfiles
from identity.service import Identity, Profiles, build_identity, identity_of, run
from identity.settings import IdentitySettings
from identity.tokens import Grant
from runtime.data_dir import check_data_dir
from runtime.http.head import HeadAsGet
from runtime.http.preflight import add_start_check
from runtime.http.problem_types import NOT_READY
from runtime.http.problems import problem
from runtime.http.request_bodies import JsonBodies
from runtime.http.request_metrics import RequestMetrics, metrics_endpoint
from runtime.http.telemetry import NO_NATIVE_TELEMETRY
from runtime.http.waiting import install_waiting_gate
from runtime.live_reload import install_live_settings
from runtime.opening import Opening
from runtime.process_metrics import show_process_metrics
from runtime.rate_limits import install_rate_limits
from runtime.server_process import configure_server_process

DESCRIPTION = """Sign-up, sign-in and the tokens every strata service verifies: ES256 JWTs with
a `kid`, their keys at `/jwks.json`, discovery at `/.well-known/openid-configuration`. The token
endpoint is OAuth 2.0 (RFC 6749, form-encoded): `password`, `refresh_token` (rotating; a reused
refresh token revokes its sign-in) and `client_credentials` (service accounts, operators).
Errors are RFC 9457 `application/problem+json`; OAuth errors add RFC 6749's `error` code."""

SERVICE_GRANT = Grant(SERVICE_SUBJECT, ("service",), USERS_SCOPE)


def create_app(
    settings: IdentitySettings | None = None,
    profiles: Profiles | None = None,
    clock: Clock = system_clock,
) -> FastAPI:
    if settings is None:  # called by uvicorn in a server process: that process logs JSON lines
        settings = IdentitySettings()
        configure_server_process(settings.log_level)
    chosen = profiles or NoProfiles()
    identity = build_identity(settings, chosen, clock)
    followed = FollowedPosition()
    opening = _database_opening(identity)

    def serve(opened: Identity) -> AbstractAsyncContextManager[None]:
        return _running_beside(opened, settings, profiles, followed)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with opening.serving(serve):
                yield
        finally:
            identity.store.database.close()

    app = FastAPI(
        title="strata identity",
        telemetry=NO_NATIVE_TELEMETRY,
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,  # behind the gateway a redirect would drop its route's prefix
    )
    app.state.identity = identity
    install_waiting_gate(app, opening)
    app.add_middleware(
        JsonBodies, max_bytes=settings.max_body_bytes, form_paths=frozenset({"/token"})
    )
    show_process_metrics(identity.metrics.registry)
    app.add_middleware(RequestMetrics, registry=identity.metrics.registry)
    identity.metrics.registry.register(followed)
    app.add_route("/metrics", metrics_endpoint(identity.metrics.registry), include_in_schema=False)
    install_problem_handlers(app)
    app.add_middleware(HeadAsGet)
    install_rate_limits(app, settings, rate_limit_caller, identity.metrics.registry)
    if settings.identity_mode == "embedded":
        add_start_check(app, lambda: check_data_dir(settings.data_dir))
    app.include_router(endpoints.router)
    app.include_router(discovery.router)
    _add_health(app, opening)
    install_live_settings(app, settings, lambda _: identity.metrics.registry)
    return app


def _database_opening(identity: Identity) -> Opening[Identity]:
    """The database prepared (schema, first key, bootstrap clients), waited for while
    PostgreSQL is down (the embedded mode's SQLite file fails the start instead). A try has no
    deadline: replicas starting together wait for each other's schema."""

    def prepared() -> Identity:
        identity.prepare()
        return identity

    stack = identity.settings.identity_mode == "stack"
    return Opening(
        "the identity database",
        prepared,
        outages=DATABASE_OUTAGES if stack else (),
        quiet=(POOL_LOGGER,),
    )


@asynccontextmanager
async def _running_beside(
    identity: Identity,
    settings: IdentitySettings,
    profiles: Profiles | None,
    followed: FollowedPosition,
) -> AsyncIterator[None]:
    """What runs beside the requests once the database is prepared: the feed of the users'
    address changes, and the users service's client (unless `profiles` replaces it)."""
    async with AsyncExitStack() as running:
        followed.feed = await running.enter_async_context(
            following_users(settings, identity.store.database)
        )
        users_url = settings.write_url("users")
        if profiles is None and users_url is not None:
            client = httpx.AsyncClient(timeout=settings.request_timeout)
            await running.enter_async_context(client)
            identity.profiles = HttpProfiles(users_url, client, _service_token(identity))
        yield


def _service_token(identity: Identity) -> Callable[[], Awaitable[str]]:
    async def token() -> str:
        issued = await identity.runner.run(lambda: identity.issuer.access_token(SERVICE_GRANT))
        return issued.token

    return token


def _add_health(app: FastAPI, opening: Opening[Identity]) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=None)
    async def readyz(request: Request) -> JSONResponse | dict[str, str]:
        """The identity database answers."""
        if opening.waiting_for is not None:
            return problem(request, NOT_READY, opening.waiting_for)
        try:
            await run(request, identity_of(request).store.database.ping)
        except Exception as error:  # noqa: BLE001 - reported, not raised
            detail = f"identity database unreachable: {error or type(error).__name__}"
            return problem(request, NOT_READY, detail)
        return {"status": "ready"}
