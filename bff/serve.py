"""Running a BFF app under uvicorn, as its console script does."""

from collections.abc import Callable

import uvicorn

from bff.settings import BffSettings
from runtime.cli import run_without_arguments
from runtime.http.preflight import preflight
from runtime.http.unreadable_requests import ProblemHttpProtocol
from runtime.settings import load_settings


def bff_main(prog: str, factory: str, port_of: Callable[[BffSettings], int]) -> Callable[..., None]:
    """The console script of a BFF: no arguments (any is refused: one line, exit code 2),
    settings from the environment."""

    def start() -> None:
        """Serve the BFF (settings: STRATA_* environment variables, README "Settings")."""
        serve(prog, factory, port_of)

    def main(argv: list[str] | None = None) -> None:
        run_without_arguments(start, prog, argv)

    return main


def serve(prog: str, factory: str, port_of: Callable[[BffSettings], int]) -> None:
    """Check the settings (one line and exit 1 if wrong), then serve `factory`'s app."""
    loaded = load_settings(prog, BffSettings)
    assert isinstance(loaded, BffSettings)
    port = port_of(loaded)
    preflight(prog, factory)
    print(f"{prog} on http://{loaded.host}:{port} (read API {loaded.read_api_url})", flush=True)
    uvicorn.run(
        factory,
        factory=True,
        host=loaded.host,
        port=port,
        log_level=loaded.log_level,
        log_config=None,  # the JSON log lines of runtime.logs
        http=ProblemHttpProtocol,
        access_log=False,
    )
