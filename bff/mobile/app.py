"""The mobile BFF's composition root: settings -> an app serving the mobile routes."""

from fastapi import FastAPI

from bff.mobile.routes import router
from bff.service import create_bff
from bff.settings import BffSettings
from runtime.server_process import configure_server_process

DESCRIPTION = """What the mobile client shows, compact, from the read API.

Send the identity service's access token (`Authorization: Bearer ...`): it is forwarded to the
read API. Answers carry a strong `ETag`; send it back in `If-None-Match` for a 304 without a
body. A section whose backend is down or slow is `{"unavailable": true, "reason": ...}` in a 200
without an ETag (`Cache-Control: no-store`). Requests are rate limited per caller and route
(429 with `Retry-After`)."""


def create_app(settings: BffSettings | None = None) -> FastAPI:
    if settings is None:  # called by uvicorn in a server process: that process logs JSON lines
        settings = BffSettings()
        configure_server_process(settings.log_level)
    return create_bff("mobile", DESCRIPTION, settings, [router])
