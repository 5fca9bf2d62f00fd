"""`strata-read-api`: start the read API with settings from the environment."""

import sys

import uvicorn

from contexts.settings import load_settings
from read_api.stores import ReadStoresMisconfigured, read_stores_mode, stack_description
from readmodels.sql import READ_DATABASE


def main() -> None:
    settings = load_settings("strata-read-api")
    try:
        mode = read_stores_mode(settings)
    except ReadStoresMisconfigured as error:
        sys.exit(f"strata-read-api: invalid settings: {error}")
    base = f"http://{settings.host}:{settings.read_api_port}"
    where = (
        (settings.data_dir / READ_DATABASE).resolve()
        if mode == "embedded"
        else stack_description(settings)
    )
    print(f"strata read API ({mode} mode, read models in {where})", flush=True)
    print(f"  API:  {base}\n  docs: {base}/docs", flush=True)
    uvicorn.run(
        "read_api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.read_api_port,
        log_level=settings.log_level,
        log_config=None,  # the JSON log lines of runtime.logs
        access_log=False,
    )
