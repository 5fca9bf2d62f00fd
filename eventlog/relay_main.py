"""`strata-relay --context NAME`: the relay of one event store, as a process.

Composition root: settings -> event store recorder -> NATS and the context's stream -> relay,
with /healthz, /readyz and /metrics on ``STRATA_RELAY_HOST:STRATA_RELAY_PORT``. Logs are JSON
lines on stderr; with `STRATA_LIVE_SETTINGS_FILE` their level follows the live settings
(docs/config.md). SIGTERM or SIGINT stops it after the page in flight is acknowledged.

The endpoints answer at once; while PostgreSQL, then NATS (and its JetStream, for the stream),
is unreachable the relay waits for it (`runtime.opening`: tries doubling from 0.5 s to 5 s
apart, a warning line each), not ready and stoppable.

Exit codes: 0 stopped by a signal; 1 invalid settings, embedded mode, or a failure (a stream
NATS refuses, the port taken, an unreadable stream); 2 bad arguments.
"""

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

import typer
from eventsourcing.persistence import InfrastructureFactory
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
from eventlog.nats_opening import CONNECT_TRY_SECONDS, close_nats, nats_opening
from eventlog.outages import POOL_LOGGER, STORE_OUTAGES
from eventlog.postgres_recorder import PostgresSideRecordRecorder
from eventlog.relay import Relay, RelayConfig
from eventlog.relay_metrics import RelayMetrics
from eventlog.stores import event_store_env
from runtime.http.problem_types import NOT_READY
from runtime.http.problems import problem
from runtime.http.side_server import side_app, side_server
from runtime.http.telemetry import NO_NATIVE_TELEMETRY
from runtime.live_reload import live_settings_followed
from runtime.opening import Opening
from runtime.process_metrics import show_process_metrics
from runtime.server_process import configure_server_process

log = logging.getLogger("strata.relay")

PROG = "strata-relay"


OpenStore = tuple[InfrastructureFactory[Any], PostgresSideRecordRecorder]


def open_event_store(settings: Settings, context: str) -> OpenStore:
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
    try:
        recorder = factory.application_recorder()
        if not isinstance(recorder, PostgresSideRecordRecorder):
            raise TypeError(f"the {context} event store is not on PostgreSQL")
    except Exception:  # unreachable, say: its pool is not left reconnecting
        factory.close()
        raise
    return factory, recorder


def _close_store(store: OpenStore) -> None:
    store[0].close()


@dataclass(frozen=True)
class Running:
    """The parts of a relay at work, as /readyz checks them."""

    nc: NatsClient
    recorder: PostgresSideRecordRecorder
    relay: Relay


async def open_nats(settings: Settings, context: str) -> NatsClient:
    """A connection to NATS, once the context's stream is created or brought to the settings."""
    nc = await connect(settings, name=f"{PROG}-{context}", timeout=CONNECT_TRY_SECONDS)
    try:
        info = await ensure_stream(nc.jetstream(), context, settings)
    except BaseException:
        await close_nats(nc)
        raise
    log.info("stream %s is ready", info.config.name, extra=_extra(context))
    return nc


class Starting:
    """What the relay waits for until it runs (`running`): its event store, then NATS."""

    def __init__(self, store: Opening[OpenStore], nats: Opening[NatsClient]) -> None:
        self.store = store
        self.nats = nats
        self.running: Running | None = None

    def waiting_for(self) -> str:
        return self.store.waiting_for or self.nats.waiting_for or "the relay is starting"


def create_http_app(context: str, starting: Starting, registry: CollectorRegistry) -> ASGIApp:
    app = FastAPI(
        title=f"strata relay ({context})", openapi_url=None, telemetry=NO_NATIVE_TELEMETRY
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=None)
    async def readyz(request: Request) -> JSONResponse | dict[str, object]:
        """NATS is connected, the event store answers and publishing is not halted (a standby
        is ready too)."""
        running = starting.running
        if running is None:
            return problem(request, NOT_READY, starting.waiting_for())
        failures = await _failures(running)
        if failures:
            return problem(request, NOT_READY, "; ".join(failures))
        return {"status": "ready", "context": context, "active": running.relay.active}

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics of this relay."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return side_app(app)


async def _failures(running: Running) -> list[str]:
    failures = []
    if running.relay.halted is not None:
        failures.append(f"publishing halted: {running.relay.halted}")
    if not running.nc.is_connected:
        failures.append("NATS is not connected")
    try:
        await asyncio.wait_for(asyncio.to_thread(running.recorder.ping), 3)
    except Exception as error:  # noqa: BLE001 - reported, not raised
        failures.append(f"event store unreachable: {error or type(error).__name__}")
    return failures


async def serve(settings: Settings, context: str) -> int:
    """Serve the HTTP endpoints at once, and run the relay once its event store opens, until a
    signal; the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        listener = socket.create_server((settings.relay_host, settings.relay_port))
    except OSError as error:
        log.error("cannot listen on port %d: %s", settings.relay_port, error, extra=_extra(context))
        return 1
    registry = CollectorRegistry()
    show_process_metrics(registry)
    nats = nats_opening(partial(open_nats, settings, context))
    starting = Starting(_store_opening(settings, context), nats)
    server = side_server(create_http_app(context, starting, registry))
    server_task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with live_settings_followed(settings, registry):
            work = _relay_once_open(settings, context, starting, registry, stop)
            return await _until_either(work, server_task, stop)
    finally:
        server.should_exit = True
        await server_task
        listener.close()


def _store_opening(settings: Settings, context: str) -> Opening[OpenStore]:
    return Opening(
        f"the {context} event store",
        partial(open_event_store, settings, context),
        _close_store,
        outages=STORE_OUTAGES,
        quiet=(POOL_LOGGER,),
    )


async def _until_either(
    work: Awaitable[int], server: "asyncio.Task[None]", stop: asyncio.Event
) -> int:
    """`work`'s exit code; it is stopped (`stop`) if the HTTP server ends first."""
    working = asyncio.ensure_future(work)
    await asyncio.wait({working, server}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    return await working


async def _relay_once_open(
    settings: Settings,
    context: str,
    starting: Starting,
    registry: CollectorRegistry,
    stop: asyncio.Event,
) -> int:
    """Open the event store (tried until it opens), then relay; 0 if stopped meanwhile."""
    try:
        store = await starting.store.open_unless(stop)
    except Exception as error:  # noqa: BLE001 - not an outage: a bad setting, say
        log.error("cannot open the event store: %s", error, extra=_extra(context))
        return 1
    if store is None:
        return 0
    factory, recorder = store
    try:
        return await _relay_once_connected(settings, context, recorder, starting, registry, stop)
    finally:
        factory.close()


async def _relay_once_connected(
    settings: Settings,
    context: str,
    recorder: PostgresSideRecordRecorder,
    starting: Starting,
    registry: CollectorRegistry,
    stop: asyncio.Event,
) -> int:
    try:
        nc = await starting.nats.open_unless(stop)
    except Exception as error:  # noqa: BLE001 - not an outage: a stream NATS refuses, say
        log.error("cannot use NATS at %s: %s", settings.nats_url, error, extra=_extra(context))
        return 1
    if nc is None:
        return 0
    try:
        return await _serve_connected(settings, context, recorder, nc, starting, registry, stop)
    finally:
        await close_nats(nc)


async def _serve_connected(
    settings: Settings,
    context: str,
    recorder: PostgresSideRecordRecorder,
    nc: NatsClient,
    starting: Starting,
    registry: CollectorRegistry,
    stop: asyncio.Event,
) -> int:
    relay = Relay(
        context=context,
        recorder=recorder,
        database_url=str(settings.database_url(context)),
        nc=nc,
        stream=context_stream(context, settings),
        metrics=RelayMetrics(registry, context),
        config=RelayConfig.from_settings(settings),
    )
    starting.running = Running(nc, recorder, relay)
    try:
        await relay.run(stop)
    except Exception:
        log.exception("the relay failed", extra=_extra(context))
        return 1
    return 0


def _extra(context: str) -> dict[str, object]:
    return {"context": context}


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
    configure_server_process(settings.log_level)
    sys.exit(asyncio.run(serve(settings, context)))


def main(argv: list[str] | None = None) -> None:
    run(cli, PROG, argv)


if __name__ == "__main__":
    main()
