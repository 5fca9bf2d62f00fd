"""`strata`: the whole system in one process on the embedded default (SQLite files)."""

import sys

import uvicorn

from contexts.settings import load_settings

PROG = "strata"


def main() -> None:
    settings = load_settings(PROG)
    if settings.mode != "embedded":
        sys.exit(
            f"{PROG}: runs the embedded default; for the stack run one process per service"
            " (scripts/stack), or unset STRATA_USERS_DATABASE_URL and STRATA_ORDERS_DATABASE_URL"
        )
    base = f"http://{settings.host}:{settings.port}"
    print(f"strata, embedded: event stores and read models in {settings.data_dir.resolve()}")
    print(f"  write API: {base}          docs: {base}/docs")
    print(f"  read API:  {base}/read     (same docs)", flush=True)
    uvicorn.run(
        "embedded.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        access_log=False,
    )
