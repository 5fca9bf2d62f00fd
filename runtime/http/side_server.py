"""The HTTP server of a process that is not an API (the relay, the projector, the config sidecar):
its /healthz, /readyz and /metrics beside its work, in the same event loop.

`side_app` makes such an app answer as the APIs do: HEAD wherever GET (without the body), a
path or method it does not serve as a 404 or 405 in problem details, and an unexpected error as
a 500 in problem details (logged, its text not shown).

Uvicorn's own signal handling is off: the process's stop event owns SIGTERM and SIGINT, and stops
the server (`should_exit`) once its work has ended.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from runtime.http.head import HeadAsGet
from runtime.http.problems import on_http_error, on_unexpected
from runtime.http.unreadable_requests import ProblemHttpProtocol

log = logging.getLogger("strata.side_server")


def side_app(app: Starlette) -> ASGIApp:
    """`app` (its routes GET only) as a side server serves it: HEAD answered as GET without the
    body, 404, 405 and 500 as problem details, and a trailing slash a 404 rather than a
    redirect."""
    app.router.redirect_slashes = False
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected(log))
    return HeadAsGet(app)


class SideServer(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def side_server(app: ASGIApp) -> SideServer:
    """A server of `app` (start it with `serve(sockets=[listener])`): no lifespan, no access
    log, the process's JSON log lines."""
    return SideServer(
        uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", http=ProblemHttpProtocol
        )
    )
