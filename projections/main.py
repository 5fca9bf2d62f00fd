"""`strata-projector`: fold the JetStream streams into the read models (stack mode).

Serves `/healthz`, `/readyz` and `/metrics` on STRATA_PROJECTOR_HOST:STRATA_PROJECTOR_PORT.
SIGTERM or SIGINT: stop fetching, commit and ack the batches in hand, close, exit 0.
Exit codes: 0 stopped by a signal, 1 invalid settings or a dependency unreachable at start.
"""

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eventlog.logs import configure
from eventlog.settings import Settings
from eventlog.settings import load_settings as load_stack_settings
from projections.stack import StackProjector, stack_problem

PROG = "strata-projector"
logger = logging.getLogger("strata.projector")


def create_http_app(projector: StackProjector) -> Starlette:
    async def healthz(request: Request) -> Response:
        """The process is alive."""
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        """NATS is connected, every consumer is attached, Redis and the read database answer."""
        problems = await projector.problems()
        if problems:
            body = {
                "type": "/problems/not-ready",
                "title": "Not ready",
                "status": 503,
                "detail": "; ".join(f"{name}: {why}" for name, why in problems.items()),
            }
            return JSONResponse(body, status_code=503, media_type="application/problem+json")
        return JSONResponse({"status": "ready", "consumers": len(projector.runners)})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(projector.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]
    )


class _HttpServer(uvicorn.Server):
    """Uvicorn without its own signal handling: the projector's stop event owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: Settings) -> int:
    """Run the projector and its HTTP endpoints until a signal; the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        listener = socket.create_server((settings.projector_host, settings.projector_port))
    except OSError as error:
        logger.error("cannot listen on port %d: %s", settings.projector_port, error)
        return 1
    projector = StackProjector(settings)
    server = _HttpServer(
        uvicorn.Config(
            create_http_app(projector), log_config=None, access_log=False, lifespan="off"
        )
    )
    server_task = asyncio.create_task(server.serve(sockets=[listener]))
    leading = asyncio.create_task(projector.lead())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({leading, stopped}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if leading.done() and leading.result() and not stop.is_set():
        code = await _project(projector, stop)
    await projector.stop()
    server.should_exit = True
    await server_task
    listener.close()
    return code


async def _project(projector: StackProjector, stop: asyncio.Event) -> int:
    """Consume until a signal (0), a failed start (1) or the loss of the leader lock (1)."""
    try:
        await projector.start()
    except Exception as error:
        logger.error("cannot start: %s", error or type(error).__name__, exc_info=error)
        return 1
    logger.info("projecting with %d consumers", len(projector.runners))
    stopped = asyncio.create_task(stop.wait())
    lost = asyncio.create_task(projector.stopped())
    await asyncio.wait({stopped, lost}, return_when=asyncio.FIRST_COMPLETED)
    logger.info("stopping: finishing the batches in hand")
    return 1 if projector.lost_leadership else 0


def load_settings() -> Settings:
    """The settings, or exit with a one-line error naming what is wrong."""
    settings = load_stack_settings(PROG)
    problem = stack_problem(settings)
    if problem is not None:
        sys.exit(f"{PROG}: {problem}")
    return settings


def main() -> None:
    settings = load_settings()
    configure(settings.log_level)
    sys.exit(asyncio.run(serve(settings)))


if __name__ == "__main__":
    main()
