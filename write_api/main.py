"""`strata-write-api [--context NAME]`: the write service of one context, or of all of them."""

import os
import sys
from typing import Annotated

import typer

from contexts.cli import registered_context, run
from contexts.registered import REGISTRY
from contexts.settings import load_settings
from runtime.http.preflight import preflight
from runtime.http.serve import serve
from write_api.app import SERVED_CONTEXT

PROG = "strata-write-api"
FACTORY = "write_api.app:create_app"
WORKER_HEALTHCHECK_SECONDS = 30
cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@cli.command()
def write_api(
    context: Annotated[
        str | None,
        typer.Option(
            help="Serve this context only, on its own event store: "
            + ", ".join(REGISTRY.names)
            + ". Without it, every context is served.",
            callback=registered_context,
        ),
    ] = None,
) -> None:
    """Serve commands: each one appends events to its context's event store."""
    served = REGISTRY.names if context is None else (context,)
    settings = load_settings(PROG, served)
    os.environ[SERVED_CONTEXT] = context or ""
    preflight(PROG, FACTORY)
    base = f"http://{settings.host}:{settings.port}"
    where = settings.data_dir.resolve() if settings.mode == "embedded" else "PostgreSQL"
    print(
        f"strata write API of {', '.join(served)} ({settings.mode} mode, event stores in {where})",
        flush=True,
    )
    print(f"  API:  {base}\n  docs: {base}/docs", flush=True)
    serve(
        FACTORY,
        host=settings.host,
        port=settings.port,
        workers=settings.web_workers,
        log_level=settings.log_level,
        # A spawned worker answers the supervisor's pings only once it has imported every
        # context (seconds on a busy host): at uvicorn's 5 s it is killed and respawned forever.
        worker_healthcheck_seconds=WORKER_HEALTHCHECK_SECONDS,
    )
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    run(cli, PROG, argv)
