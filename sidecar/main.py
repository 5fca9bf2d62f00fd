"""`strata-config-sidecar --service NAME`: the config sidecar of one service, as a process.

Composition root: settings -> NATS (reconnecting without end; each reconnect resyncs the watcher)
-> the configuration bucket -> a `Follower` of the service's keys, writing the service's live
settings file (`STRATA_LIVE_SETTINGS_FILE`, the same file the service follows). /healthz, /readyz
(NATS connected, the initial values handed on, the bucket there) and /metrics on
STRATA_CONFIG_SIDECAR_HOST:STRATA_CONFIG_SIDECAR_PORT, at once: while NATS is unreachable at
start the sidecar waits for it (`eventlog.nats_opening`), not ready and stoppable. Logs are JSON
lines on stderr.

Exit codes: 0 stopped by SIGTERM or SIGINT; 1 invalid settings, no live settings file set, the
port taken, or a NATS error that is not an outage; 2 bad arguments (an unknown service).
"""

import asyncio
import logging
import signal
import socket
import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from nats.aio.client import Client as NatsClient
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp

from contexts.cli import run
from eventlog.jetstream import connect
from eventlog.nats_opening import CONNECT_TRY_SECONDS, close_nats, nats_opening
from runtime.http.problem_types import NOT_READY
from runtime.http.problems import problem
from runtime.http.side_server import side_app, side_server
from runtime.http.telemetry import NO_NATIVE_TELEMETRY
from runtime.live_settings import LiveSettingsFile
from runtime.opening import Opening
from runtime.process_metrics import show_process_metrics
from runtime.server_process import configure_server_process
from runtime.settings import CommonSettings, load_settings
from sidecar.bucket import ConfigBucket
from sidecar.follower import Follower, ServiceConfig, SidecarMetrics
from sidecar.services import UnknownService, service_settings, services

log = logging.getLogger("strata.config_sidecar")

PROG = "strata-config-sidecar"


class Connecting:
    """NATS as the sidecar waits for it: `nc` once connected."""

    def __init__(self, opening: Opening[NatsClient]) -> None:
        self.opening = opening
        self.nc: NatsClient | None = None

    def waiting_for(self) -> str:
        return self.opening.waiting_for or "NATS is not connected yet"


def create_http_app(
    service: str, connecting: Connecting, follower: Follower, registry: CollectorRegistry
) -> ASGIApp:
    app = FastAPI(
        title=f"strata config sidecar ({service})",
        openapi_url=None,
        telemetry=NO_NATIVE_TELEMETRY,
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=None)
    async def readyz(request: Request) -> JSONResponse | dict[str, str]:
        """NATS is connected and the service has been handed the bucket's values (again, once a
        deleted bucket is there anew)."""
        nc = connecting.nc
        if nc is None:
            return problem(request, NOT_READY, connecting.waiting_for())
        if not nc.is_connected:
            return problem(request, NOT_READY, "NATS is not connected")
        if reason := follower.not_ready:
            return problem(request, NOT_READY, reason)
        return {"status": "ready", "service": service}

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics of this sidecar."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return side_app(app)


async def serve(settings: CommonSettings, service: str, file: Path) -> int:
    """Serve the HTTP endpoints at once, and follow the service's keys once NATS answers, until
    a signal; the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port = settings.config_sidecar_port
    try:
        listener = socket.create_server((settings.config_sidecar_host, port))
    except OSError as error:
        log.error("cannot listen on port %d: %s", port, error)
        return 1
    registry = CollectorRegistry()
    show_process_metrics(registry)
    metrics = SidecarMetrics(registry, service)
    config = ServiceConfig(service, service_settings(service), metrics)

    def nats_client() -> NatsClient:
        assert connecting.nc is not None, "the follower runs once NATS is connected"
        return connecting.nc

    bucket = ConfigBucket(nats_client, settings)
    follower = Follower(bucket, config, LiveSettingsFile(file), metrics)
    name = f"{PROG}-{service}"
    opening = nats_opening(
        partial(
            connect, settings, name=name, timeout=CONNECT_TRY_SECONDS, reconnected=follower.resync
        )
    )
    connecting = Connecting(opening)
    server = side_server(create_http_app(service, connecting, follower, registry))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        return await _follow_once_connected(connecting, follower, serving, stop)
    finally:
        server.should_exit = True
        await serving
        listener.close()


async def _follow_once_connected(
    connecting: Connecting, follower: Follower, serving: "asyncio.Task[None]", stop: asyncio.Event
) -> int:
    try:
        connecting.nc = await connecting.opening.open_unless(stop)
    except Exception as error:  # noqa: BLE001 - not an outage: a refused login, say
        log.error("cannot use NATS: %s", error)
        return 1
    if connecting.nc is None:
        return 0
    try:
        following = asyncio.create_task(follower.run())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({following, serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        following.cancel()
        stopped.cancel()
        await asyncio.wait({following})
        return 0
    finally:
        await close_nats(connecting.nc)


cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _known_service(service: str) -> str:
    try:
        service_settings(service)
    except UnknownService as error:
        raise typer.BadParameter(str(error)) from None
    return service


@cli.command()
def config_sidecar(
    service: Annotated[
        str,
        typer.Option(
            help="The service beside which it runs: " + ", ".join(services()),
            callback=_known_service,
        ),
    ],
) -> None:
    """Hand a service the live settings of the configuration bucket, validated, as they change."""
    settings = load_settings(PROG, CommonSettings)
    if settings.live_settings_file is None:
        sys.exit(f"{PROG}: set STRATA_LIVE_SETTINGS_FILE, the file the service follows")
    configure_server_process(settings.log_level)
    sys.exit(asyncio.run(serve(settings, service, settings.live_settings_file)))


def main(argv: list[str] | None = None) -> None:
    run(cli, PROG, argv)


if __name__ == "__main__":
    main()
