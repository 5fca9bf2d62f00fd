"""`strata`: the whole system in one process on the embedded default (SQLite files).

    strata                                    # serve, as printed at start
    strata config get|set|unset|history ...   # the live settings (sidecar/cli.py, docs/config.md)

Exit codes: 2 bad arguments (one line on stderr); `strata config` has its own (docs/config.md).
"""

import contextlib
import socket
import sys

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from contexts.settings import Settings, database_url_variables, load_settings
from embedded import simulators
from runtime.auth.dev import write_dev_token
from runtime.http.preflight import preflight
from runtime.http.unreadable_requests import ProblemHttpProtocol
from sidecar import cli as config_cli

PROG = "strata"
FACTORY = "embedded.app:create_app"
BACKLOG = 2048
USAGE = f"usage: {PROG} [config get|set|unset|history ...]"
HELP = f"""{USAGE}

  {PROG}                 serve the whole system on the embedded default (SQLite files in
                         STRATA_DATA_DIR, ./var), printing where its APIs are
  {PROG} config ...      the live settings of a stack's services (docs/config.md)

Settings are STRATA_* environment variables, such as STRATA_PORT (8000) and STRATA_HOST
(127.0.0.1); the README's "Settings" lists them."""


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    match arguments:
        case []:
            serve()
        case ["config", *rest]:
            config_cli.main(rest, prog=f"{PROG} config")
        case ["-h" | "--help"]:
            print(HELP)
        case [first, *_]:
            print(f"{PROG}: no command {first!r}; {USAGE}", file=sys.stderr)
            sys.exit(2)


def serve() -> None:
    """The embedded system, until Ctrl-C."""
    settings = load_settings(PROG)
    if settings.mode != "embedded":
        sys.exit(
            f"{PROG}: runs the embedded default; for the stack run one process per service"
            f" (scripts/stack), or unset {database_url_variables()}"
        )
    preflight(PROG, FACTORY)
    listener = _listening(settings.host, settings.port)
    base = simulators.base_url(settings.host, settings.port)
    data = settings.data_dir.resolve()
    print(f"strata, embedded: event stores, read models and simulators' ledgers in {data}")
    print(f"  write API: {base}          docs: {base}/docs")
    print(f"  read API:  {base}/read     (same docs)")
    for simulator in simulators.SIMULATORS:
        print(f"  {_provider(settings, simulator)}")
    print(_auth(settings))
    sys.stdout.flush()
    config = uvicorn.Config(
        FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        http=ProblemHttpProtocol,
        access_log=False,
    )
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn re-raises it once stopped
        server.run(sockets=[listener])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _listening(host: str, port: int) -> socket.socket:
    """The process's port, listening before the app starts: the job pollers started by its
    lifespan call the simulators in this process at once (jobs due after a restart), and such a
    call must wait in the backlog until the app serves, not be refused (a refused call counts
    against the provider's circuit breaker, which would then hold every provider call for
    STRATA_BREAKER_RECOVERY_SECONDS). A port that cannot be had is one line, exit code 1. Not
    `runtime.http.serve`'s `SO_REUSEPORT` socket: a second `strata` on the port must fail, not
    share its connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
    except OSError as error:
        sys.exit(f"{PROG}: cannot listen on {host}:{port} (STRATA_HOST, STRATA_PORT): {error}")
    return sock


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
