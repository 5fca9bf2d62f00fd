"""What every console script shares: usage errors as one line with exit code 2, and a command
that could not be done (`CommandFailed`: a database that does not answer, say) as one line with
exit code 1."""

import sys
from typing import NoReturn

import typer


class CommandFailed(Exception):
    """The command could not be done: its message is the line shown (exit code 1)."""


def run(cli: typer.Typer, prog: str, argv: list[str] | None = None) -> NoReturn:
    command = typer.main.get_command(cli)
    try:
        code = command.main(args=argv, prog_name=prog, standalone_mode=False)
    except typer.TyperException as error:  # bad arguments: exit code 2
        print(f"{prog}: {' '.join(error.format_message().split())}", file=sys.stderr)
        sys.exit(error.exit_code)
    except typer.Abort:
        sys.exit(1)
    except CommandFailed as error:
        print(f"{prog}: {error}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
