"""`strata`: the whole system in one process on the embedded default (SQLite files)."""

import sys

import uvicorn

from contexts.settings import Settings, load_settings
from embedded import simulators
from runtime.auth.dev import write_dev_token

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
    print(f"  read API:  {base}/read     (same docs)")
    for simulator in simulators.SIMULATORS:
        print(f"  {_provider(settings, simulator)}")
    print(_auth(settings))
    sys.stdout.flush()
    uvicorn.run(
        "embedded.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        access_log=False,
    )


def _provider(settings: Settings, simulator: simulators.EmbeddedSimulator) -> str:
    """Where the participants find a provider: its simulator in this process, or the URL set."""
    if simulator in simulators.in_process(settings):
        url = f"{simulators.own_url(settings)}{simulator.path}"
        return f"{simulator.name} simulator, in this process: {url}/docs"
    return f"{simulator.name}: {getattr(settings, simulator.url_field)} (configured)"


def _auth(settings: Settings) -> str:
    """How requests are authenticated, and the development operator token if it is the
    development key that signs them (see docs/auth.md)."""
    if settings.auth == "insecure":
        return "  auth: NONE (STRATA_AUTH=insecure): every caller acts as an operator"
    if settings.jwks_url is not None:
        return f"  auth: tokens of {settings.identity_issuer} (keys at {settings.jwks_url})"
    token, path = write_dev_token(settings.data_dir, settings.identity_issuer)
    return (
        "  auth: development key; an operator token, valid 7 days, is in "
        f"{path} :\n  export STRATA_TOKEN={token}"
    )
