"""`strata-read-api`: start the read API with settings from the environment."""

import sys

from contexts.settings import load_settings
from read_api.stores import ReadStoresMisconfigured, read_stores_mode, stack_description
from readmodels.sql import READ_DATABASE
from runtime.cli import run_without_arguments
from runtime.http.preflight import preflight
from runtime.http.serve import serve

PROG = "strata-read-api"
FACTORY = "read_api.app:create_app"


def main(argv: list[str] | None = None) -> None:
    run_without_arguments(start, PROG, argv)


def start() -> None:
    """Serve the read API (settings: STRATA_* environment variables, README "Settings")."""
    settings = load_settings(PROG)
    try:
        mode = read_stores_mode(settings)
    except ReadStoresMisconfigured as error:
        sys.exit(f"{PROG}: invalid settings: {error}")
    preflight(PROG, FACTORY)
    base = f"http://{settings.host}:{settings.read_api_port}"
    where = (
        (settings.data_dir / READ_DATABASE).resolve()
        if mode == "embedded"
        else stack_description(settings)
    )
    print(f"strata read API ({mode} mode, read models in {where})", flush=True)
    print(f"  API:  {base}\n  docs: {base}/docs", flush=True)
    serve(
        FACTORY,
        host=settings.host,
        port=settings.read_api_port,
        workers=settings.web_workers,
        log_level=settings.log_level,
    )
