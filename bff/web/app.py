"""The web BFF's composition root: settings -> an app serving the dashboard."""

from fastapi import FastAPI

from bff.service import create_bff
from bff.settings import BffSettings
from bff.web.dashboard import router
from runtime.server_process import configure_server_process

DESCRIPTION = """What the web client shows, shaped for it, from the read API in one call.

Send the identity service's access token (`Authorization: Bearer ...`): it is forwarded to the
read API. A section whose backend is down or slow is `{"unavailable": true, "reason": ...}` in a
200. Pass a command's `position` to wait until every section reflects it. Requests are rate
limited per caller and route (429 with `Retry-After`)."""


def create_app(settings: BffSettings | None = None) -> FastAPI:
    if settings is None:  # called by uvicorn in a server process: that process logs JSON lines
        settings = BffSettings()
        configure_server_process(settings.log_level)
    return create_bff("web", DESCRIPTION, settings, [router])
