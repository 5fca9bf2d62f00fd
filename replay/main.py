"""`replay`: the operators' command line (see `replay.app` for output modes and exit codes)."""

import sys

import click
import typer

# Each module registers its commands on the app when imported.
import replay.aggregates_cli
import replay.jobs_cli
import replay.projections_cli
import replay.sagas_cli  # noqa: F401
from replay.app import BAD_ARGUMENTS, PROG, app
from runtime.cli import error_line

__all__ = ["app", "main"]


def main() -> None:
    """Usage errors (unknown command or option, bad value) print one line and exit 2."""
    try:
        code = app(standalone_mode=False)
    # Typer >= 0.26 vendors click: its errors derive from TyperException, not click's classes.
    except (typer.TyperException, click.UsageError) as error:
        # A command left out: its usage was printed (on stdout) and the message is empty.
        message = error.format_message().strip() or "Missing command."
        if "\n" in message:  # `replay` alone, or a group without its command: the help text
            sys.stderr.write(message + "\n")
        else:
            sys.stderr.write(f"{PROG}: {error_line(message)}\n")
        sys.exit(BAD_ARGUMENTS if error.exit_code in (1, 2) else error.exit_code)
    except (typer.Abort, click.Abort):
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
