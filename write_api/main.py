"""`strata-write-api`: start the write API with settings from the environment."""

import sys

import uvicorn
from pydantic import ValidationError

from eventlog.settings import Settings


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"STRATA_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            if e["loc"]
            else e["msg"]
            for e in error.errors()
        )
        sys.exit(f"strata-write-api: invalid settings: {problems}")
    base = f"http://{settings.host}:{settings.port}"
    where = settings.data_dir.resolve() if settings.mode == "embedded" else "PostgreSQL"
    print(f"strata write API ({settings.mode} mode, event stores in {where})", flush=True)
    print(f"  API:  {base}\n  docs: {base}/docs", flush=True)
    uvicorn.run(
        "write_api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.web_workers,
        log_level=settings.log_level,
        log_config=None,  # the JSON log lines of eventlog.logs, in every worker
        access_log=False,
    )
