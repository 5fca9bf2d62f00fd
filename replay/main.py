"""`replay`: the operators' command line (see `replay.app` for output modes and exit codes)."""

import sys

import click

# Each module registers its commands on the app when imported.
import replay.aggregates_cli
import replay.projections_cli  # noqa: F401
from replay.app import BAD_ARGUMENTS, PROG, app


def main() -> None:
    """Usage errors (unknown command or option, bad value) print one line and exit 2."""
    try:
        code = app(standalone_mode=False)
    except click.UsageError as error:
        sys.stderr.write(f"{PROG}: {error.format_message()}\n")
        sys.exit(BAD_ARGUMENTS)
    except click.Abort:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
