"""`strata-projector`: fold the JetStream streams into the read models (stack mode).

Serves `/healthz`, `/readyz` and `/metrics` on STRATA_PROJECTOR_HOST:STRATA_PROJECTOR_PORT.
With `STRATA_LIVE_SETTINGS_FILE` it follows its live settings (log level, feature flags:
docs/config.md). SIGTERM or SIGINT: stop fetching, commit and ack the batches in hand, close,
exit 0.
An outage of PostgreSQL, NATS or Redis never ends the process: it waits (not ready), losing the
leader lock makes it a standby again, and a start that fails is retried with growing pauses.
With `STRATA_PROJECTOR_MODE=partitioned` the process is a worker holding leases on a share of
the partitions instead (projections/workers.py).
Exit codes: 0 stopped by a signal, 1 invalid settings or the HTTP port taken.
"""

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from contexts.settings import Settings
from contexts.settings import load_settings as load_stack_settings
from eventlog.outages import NATS_OUTAGES
from projections.feed import Member
from projections.metrics import ProjectorMetrics
from projections.stack import StackProjector, stack_problem
from projections.workers import ProjectorWorker
from runtime.cli import run_without_arguments
from runtime.http.problem_types import NOT_READY
from runtime.http.problems import problem
from runtime.http.side_server import side_app, side_server
from runtime.live_reload import live_settings_followed
from runtime.opening import finished_before
from runtime.process_metrics import show_process_metrics
from runtime.server_process import configure_server_process

PROG = "strata-projector"
START_PAUSES = (1.0, 2.0, 5.0, 10.0)
"""Pauses between a term and the next bid for the lock after failed starts (the last repeats)."""
logger = logging.getLogger("strata.projector")


class Projecting(Protocol):
    """What the HTTP endpoints read: the single projector's or a worker's."""

    @property
    def metrics(self) -> ProjectorMetrics: ...

    @property
    def runners(self) -> list[Member]: ...

    async def problems(self) -> dict[str, str]: ...


def create_http_app(projector: Projecting) -> ASGIApp:
    async def healthz(request: Request) -> Response:
        """The process is alive."""
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        """NATS is connected, every consumer is attached, Redis and the read database answer."""
        problems = await projector.problems()
        if problems:
            detail = "; ".join(f"{name}: {why}" for name, why in problems.items())
            return problem(request, NOT_READY, detail)
        return JSONResponse({"status": "ready", "consumers": len(projector.runners)})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(projector.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return side_app(
        Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/readyz", readyz),
                Route("/metrics", metrics),
            ]
        )
    )


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
    show_process_metrics(projector.metrics.registry)
    async with live_settings_followed(settings, projector.metrics.registry):
        if settings.projector_mode == "partitioned":
            await _serve_as_worker(ProjectorWorker(projector), listener, stop)
        else:
            await _serve_projecting(projector, listener, stop)
    return 0


async def _serve_as_worker(
    worker: ProjectorWorker, listener: socket.socket, stop: asyncio.Event
) -> None:
    """The partitioned mode: a worker over partition leases (projections/workers.py)."""
    server = side_server(create_http_app(worker))
    server_task = asyncio.create_task(server.serve(sockets=[listener]))
    await worker.run(stop)
    await worker.projector.close()
    server.should_exit = True
    await server_task
    listener.close()


async def _serve_projecting(
    projector: StackProjector, listener: socket.socket, stop: asyncio.Event
) -> None:
    server = side_server(create_http_app(projector))
    server_task = asyncio.create_task(server.serve(sockets=[listener]))
    failed_starts = 0
    while await projector.lead(stop):
        if await _project(projector, stop):
            failed_starts = 0
        else:
            failed_starts += 1
        await projector.stop_consuming()
        if stop.is_set():
            break
        pause = START_PAUSES[min(failed_starts, len(START_PAUSES) - 1)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
    await projector.close()
    server.should_exit = True
    await server_task
    listener.close()


async def _project(projector: StackProjector, stop: asyncio.Event) -> bool:
    """Consume until a signal or the loss of the leader lock; False if it could not start."""
    starting = asyncio.create_task(projector.start())
    try:
        if not await finished_before(starting, stop):  # stopped while a try was in flight
            return False
        starting.result()
    except Exception as error:  # a dependency is down: stand by and try again
        outage = isinstance(error, NATS_OUTAGES)  # a line, not a traceback, per try
        logger.log(
            logging.WARNING if outage else logging.ERROR,
            "cannot start consuming: %s; releasing the lock and trying again",
            str(error) or type(error).__name__,
            exc_info=None if outage else error,
        )
        return False
    logger.info("projecting with %d consumers", len(projector.runners))
    stopped = asyncio.create_task(stop.wait())
    over = asyncio.create_task(projector.term_over())
    await asyncio.wait({stopped, over}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    over.cancel()
    logger.info("stopping: finishing the batches in hand")
    return True


def load_settings() -> Settings:
    """The settings, or exit with a one-line error naming what is wrong."""
    settings = load_stack_settings(PROG)
    problem = stack_problem(settings)
    if problem is not None:
        sys.exit(f"{PROG}: {problem}")
    return settings


def main(argv: list[str] | None = None) -> None:
    run_without_arguments(start, PROG, argv)


def start() -> None:
    """Fold the JetStream streams into the read models (settings: STRATA_* environment
    variables, README "Settings"; the stack mode)."""
    settings = load_settings()
    configure_server_process(settings.log_level)
    sys.exit(asyncio.run(serve(settings)))


if __name__ == "__main__":
    main()
