"""`strata-read-api`: start the read API with settings from the environment."""

import sys

from contexts.settings import load_settings
from read_api.stores import ReadStoresMisconfigured, read_stores_mode, stack_description
from readmodels.sql import READ_DATABASE
from runtime.http.preflight import preflight
from runtime.http.serve import serve

FACTORY = "read_api.app:create_app"


def main() -> None:
    settings = load_settings("strata-read-api")
    try:
        mode = read_stores_mode(settings)
    except ReadStoresMisconfigured as error:
        sys.exit(f"strata-read-api: invalid settings: {error}")
    preflight("strata-read-api", FACTORY)
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
