"""`strata-relay --context NAME`: the relay of one event store, as a process.

Composition root: settings -> event store recorder -> NATS and the context's stream -> relay,
with /healthz, /readyz and /metrics on ``STRATA_RELAY_HOST:STRATA_RELAY_PORT``. Logs are JSON
lines on stderr; with `STRATA_LIVE_SETTINGS_FILE` their level follows the live settings
(docs/config.md). SIGTERM or SIGINT stops it after the page in flight is acknowledged.

Exit codes: 0 stopped by a signal; 1 invalid settings, embedded mode, or a failure (NATS or the
event store unreachable at start, the port taken, an unreadable stream); 2 bad arguments.
"""

import asyncio
import logging
import signal
import socket
import sys
from contextlib import suppress
from typing import Annotated, Any

import nats.errors
import typer
from eventsourcing.persistence import InfrastructureFactory, PersistenceError
from eventsourcing.utils import Environment
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from nats.aio.client import Client as NatsClient
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp

from contexts.cli import registered_context, run
from contexts.registered import REGISTRY
from contexts.settings import Settings, load_settings
from eventlog.jetstream import connect, context_stream, ensure_stream
from eventlog.postgres_recorder import PostgresSideRecordRecorder
from eventlog.relay import Relay, RelayConfig
from eventlog.relay_metrics import RelayMetrics
from eventlog.stores import event_store_env
from runtime.http.problem_types import NOT_READY
from runtime.http.problems import problem
from runtime.http.side_server import side_app, side_server
from runtime.live_reload import live_settings_followed
from runtime.logs import configure as configure_logging

log = logging.getLogger("strata.relay")

PROG = "strata-relay"


def open_event_store(
    settings: Settings, context: str
) -> tuple[InfrastructureFactory[Any], PostgresSideRecordRecorder]:
    """The context's recorder alone (no application): the relay reads, it never decides. The
    relay reads the log on a connection of its own; the recorder's pool only answers /readyz.

    It does not create the store's tables: that is the write API's job, and creating indexes
    (even `IF NOT EXISTS`) takes SHARE locks that can deadlock with appends in flight. Until the
    tables exist the relay logs the error and retries.
    """
    lean = settings.model_copy(update={"worker_threads": 2})  # a small pool is plenty
    prefix = context.upper()
    env = event_store_env(lean, context) | {f"{prefix}_CREATE_TABLE": "n"}
    factory = InfrastructureFactory.construct(Environment(context, env))
    recorder = factory.application_recorder()
    if not isinstance(recorder, PostgresSideRecordRecorder):
        factory.close()
        raise TypeError(f"the {context} event store is not on PostgreSQL")
    return factory, recorder


def create_http_app(
    context: str,
    nc: NatsClient,
    recorder: PostgresSideRecordRecorder,
    relay: Relay,
    registry: CollectorRegistry,
) -> ASGIApp:
    app = FastAPI(title=f"strata relay ({context})", openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=None)
    async def readyz(request: Request) -> JSONResponse | dict[str, object]:
        """NATS is connected, the event store answers and publishing is not halted (a standby
        is ready too)."""
        failures = []
        if relay.halted is not None:
            failures.append(f"publishing halted: {relay.halted}")
        if not nc.is_connected:
            failures.append("NATS is not connected")
        try:
            await asyncio.wait_for(asyncio.to_thread(recorder.ping), 3)
        except Exception as error:  # noqa: BLE001 - reported, not raised
            failures.append(f"event store unreachable: {error or type(error).__name__}")
        if failures:
            return problem(request, NOT_READY, "; ".join(failures))
        return {"status": "ready", "context": context, "active": relay.active}

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics of this relay."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return side_app(app)


async def serve(settings: Settings, context: str) -> int:
    """Run the relay and its HTTP endpoints until a signal; the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    extra = {"context": context}
    try:
        factory, recorder = open_event_store(settings, context)
    except PersistenceError as error:
        log.error("the event store is unreachable: %s", error, extra=extra)
        return 1
    try:
        nc = await connect(settings, name=f"{PROG}-{context}")
    except (TimeoutError, nats.errors.Error, OSError) as error:
        log.error("NATS at %s is unreachable: %r", settings.nats_url, error, extra=extra)
        factory.close()
        return 1
    try:
        return await _serve_connected(settings, context, recorder, nc, stop)
    finally:
        with suppress(nats.errors.Error, TimeoutError):
            await asyncio.wait_for(nc.close(), 5)
        factory.close()


async def _serve_connected(
    settings: Settings,
    context: str,
    recorder: PostgresSideRecordRecorder,
    nc: NatsClient,
    stop: asyncio.Event,
) -> int:
    extra = {"context": context}
    try:
        info = await ensure_stream(nc.jetstream(), context, settings)
    except (nats.errors.Error, TimeoutError) as error:
        log.error("cannot create or update the stream: %s", error, extra=extra)
        return 1
    log.info("stream %s is ready", info.config.name, extra=extra)
    registry = CollectorRegistry()
    relay = Relay(
        context=context,
        recorder=recorder,
        database_url=str(settings.database_url(context)),
        nc=nc,
        stream=context_stream(context, settings),
        metrics=RelayMetrics(registry, context),
        config=RelayConfig.from_settings(settings),
    )
    try:
        listener = socket.create_server((settings.relay_host, settings.relay_port))
    except OSError as error:
        log.error("cannot listen on port %d: %s", settings.relay_port, error, extra=extra)
        return 1
    app = create_http_app(context, nc, recorder, relay, registry)
    server = side_server(app)
    relay_task = asyncio.create_task(relay.run(stop))
    server_task = asyncio.create_task(server.serve(sockets=[listener]))
    async with live_settings_followed(settings, registry):
        await asyncio.wait({relay_task, server_task}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    server.should_exit = True
    await asyncio.wait({relay_task, server_task})
    listener.close()
    if not relay_task.cancelled() and (failure := relay_task.exception()) is not None:
        log.error("the relay failed", exc_info=failure, extra=extra)
        return 1
    return 0


def _load_settings(context: str) -> Settings:
    settings = load_settings(PROG, (context,))
    if settings.mode != "stack":
        variable = REGISTRY[context].database_url_variable
        sys.exit(f"{PROG}: the relay needs the stack mode: set {variable}")
    return settings


cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@cli.command()
def relay(
    context: Annotated[
        str,
        typer.Option(
            help="The context whose event store's events to publish: " + ", ".join(REGISTRY.names),
            callback=registered_context,
        ),
    ],
) -> None:
    """Publish one event store's events to its JetStream stream, once each and in order."""
    settings = _load_settings(context)
    configure_logging(settings.log_level)
    sys.exit(asyncio.run(serve(settings, context)))


def main(argv: list[str] | None = None) -> None:
    run(cli, PROG, argv)


if __name__ == "__main__":
    main()
