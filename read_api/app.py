"""The read API's composition root: settings -> read stores -> FastAPI app, following its live
settings (log level, feature flags; runtime/live_reload.py)."""

from fastapi import FastAPI

from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings
from read_api.problems import install_problem_handlers
from read_api.resources import ReadSide
from read_api.routes import include_read_routes
from runtime.auth.http import authenticator, install_auth
from runtime.http.head import HeadAsGet
from runtime.http.telemetry import NO_NATIVE_TELEMETRY
from runtime.live_reload import install_live_settings
from runtime.server_process import configure_server_process

DESCRIPTION = """Queries over the read models that projectors build from the event log.

Every answer carries `X-Read-Position: users:<n>,orders:<m>`: the checkpoints, per context, of
the projections behind the endpoint, read just before the data (the answer reflects at least
those positions). Pass the `position` a command returned (`?position=users:120`) to wait,
bounded by `wait` seconds, until the answer reflects your write; if it does not in time the
answer is a 503 with `Retry-After`. Listings are keyset pages: follow `next_cursor` with the
same filters. Money is a decimal string with its currency's ISO 4217 minor units ("12.30"
dollars, "1500" yen, "1.230" dinars), times are ISO 8601 UTC, and errors are RFC 9457
`application/problem+json`."""


def create_app(
    settings: Settings | None = None, *, prefix: str = "", contexts: Registry = REGISTRY
) -> FastAPI:
    """The read API of `contexts` on its own; the stores open when the app starts (its
    lifespan)."""
    if settings is None:  # called by uvicorn in a server process: that process logs JSON lines
        settings = Settings()
        configure_server_process(settings.log_level)
    app = FastAPI(
        title="strata read API",
        telemetry=NO_NATIVE_TELEMETRY,
        description=DESCRIPTION,
        redirect_slashes=False,  # behind the gateway a redirect would drop its route's prefix
    )
    install_problem_handlers(app)
    app.add_middleware(HeadAsGet)
    install_auth(app, authenticator(settings))
    include_read_routes(app, settings, prefix, contexts=contexts)
    install_live_settings(app, settings, lambda app: read_side_of(app).metrics.registry)
    return app


def read_side_of(app: FastAPI) -> ReadSide:
    side: ReadSide = app.state.read_side
    return side
