"""`strata-write-api`: start the write API with settings from the environment."""

import uvicorn

from contexts.settings import load_settings


def main() -> None:
    settings = load_settings("strata-write-api")
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
        log_config=None,  # the JSON log lines of runtime.logs, in every worker
        access_log=False,
    )
