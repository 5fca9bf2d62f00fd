"""The all-in-one composition root: write API + embedded fan-out + read API under /read, and the
provider simulators under /simulators unless their URLs are configured (`embedded.simulators`).
Without an identity service configured, tokens are checked against the development key of the
data directory (`runtime.auth.dev`)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings
from embedded import simulators
from eventlog.stores import Services
from projections.embedded import start_embedded_fanout
from read_api.routes import include_read_routes
from readmodels.sql import READ_DATABASE
from runtime.auth.dev import DevKeys
from runtime.auth.jwks import KeySource
from runtime.data_dir import check_sqlite_files
from runtime.http.preflight import add_start_check
from runtime.server_process import configure_server_process
from write_api.app import create_app as create_write_app

READ_PREFIX = "/read"


def create_app(settings: Settings | None = None, contexts: Registry = REGISTRY) -> FastAPI:
    if settings is None:  # called by uvicorn in the server process
        settings = Settings()
        configure_server_process(settings.log_level)
    if settings.mode != "embedded":
        raise ValueError("the all-in-one process runs the embedded default only")
    mounted = simulators.in_process(settings)
    settings = simulators.pointed_at_them(settings)
    embedded_settings = settings

    @asynccontextmanager
    async def fanout(app: FastAPI, services: Services) -> AsyncIterator[None]:
        """Fold each store's log into the SQLite read models, woken by every commit."""
        running = await asyncio.to_thread(
            start_embedded_fanout, embedded_settings, services, contexts.projections()
        )
        app.state.fanout = running
        for service in services.all():
            service.commit_listeners.append(running.wake)
        try:
            yield
        finally:
            await asyncio.to_thread(running.stop)

    app = create_write_app(
        settings, extensions=[fanout], contexts=contexts, keys=development_keys(settings)
    )
    app.title = "strata (embedded)"
    include_read_routes(app, settings, prefix=READ_PREFIX, contexts=contexts)
    simulators.mount(app, mounted, settings.data_dir)
    add_start_check(app, lambda: simulators.check_ledgers(mounted, settings.data_dir))
    read_database = {"the read database": settings.data_dir / READ_DATABASE}
    add_start_check(app, lambda: check_sqlite_files(read_database))
    return app


def development_keys(settings: Settings) -> KeySource | None:
    """The development key (`runtime.auth.dev`) when no identity service is configured
    (`STRATA_JWKS_URL` unset) and auth is on; else None: the JWKS of the settings."""
    if settings.auth == "jwt" and settings.jwks_url is None:
        return DevKeys(settings.data_dir)
    return None
