"""`strata-read-api`: start the read API with settings from the environment."""

import sys

import uvicorn
from pydantic import ValidationError

from eventlog.settings import Settings
from read_api.stores import ReadStoresMisconfigured, read_stores_mode


def main() -> None:
    try:
        settings = Settings()
        mode = read_stores_mode(settings)
    except ValidationError as error:
        problems = "; ".join(
            f"STRATA_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            if e["loc"]
            else e["msg"]
            for e in error.errors()
        )
        sys.exit(f"strata-read-api: invalid settings: {problems}")
    except ReadStoresMisconfigured as error:
        sys.exit(f"strata-read-api: invalid settings: {error}")
    base = f"http://{settings.host}:{settings.read_api_port}"
    where = (
        (settings.data_dir / "read.sqlite").resolve()
        if mode == "embedded"
        else "Redis and PostgreSQL"
    )
    print(f"strata read API ({mode} mode, read models in {where})", flush=True)
    print(f"  API:  {base}\n  docs: {base}/docs", flush=True)
    uvicorn.run(
        "read_api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.read_api_port,
        log_level=settings.log_level,
        access_log=False,
    )
