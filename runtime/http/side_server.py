"""The HTTP server of a process that is not an API (the relay, the projector, the config sidecar):
its /healthz, /readyz and /metrics beside its work, in the same event loop.

Uvicorn's own signal handling is off: the process's stop event owns SIGTERM and SIGINT, and stops
the server (`should_exit`) once its work has ended.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from runtime.http.unreadable_requests import ProblemHttpProtocol


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
