"""What every console script shares: usage errors as one line with exit code 2, and a command
that could not be done (`CommandFailed`: a database that does not answer, say) as one line with
exit code 1."""

import sys
from collections.abc import Callable
from typing import NoReturn

import typer

LINE_CHARACTERS = 1_000
"""At most about this much of an error message is shown: it may quote an argument of any size."""


def error_line(message: str) -> str:
    """`message` on one line; past `LINE_CHARACTERS`, its middle is left out (the end often
    says what to do)."""
    line = " ".join(message.splitlines())
    if len(line) <= LINE_CHARACTERS:
        return line
    head, tail = line[: LINE_CHARACTERS * 2 // 3], line[-LINE_CHARACTERS // 3 :]
    return f"{head} … ({len(line) - len(head) - len(tail):,} characters left out) … {tail}"


class CommandFailed(Exception):
    """The command could not be done: its message is the line shown (exit code 1)."""


def run(cli: typer.Typer, prog: str, argv: list[str] | None = None) -> NoReturn:
    command = typer.main.get_command(cli)
    try:
        code = command.main(args=argv, prog_name=prog, standalone_mode=False)
    except typer.TyperException as error:  # bad arguments: exit code 2
        print(f"{prog}: {error_line(error.format_message())}", file=sys.stderr)
        sys.exit(error.exit_code)
    except typer.Abort:
        sys.exit(1)
    except CommandFailed as error:
        print(f"{prog}: {error_line(str(error))}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def run_without_arguments(
    start: Callable[[], object], prog: str, argv: list[str] | None = None
) -> NoReturn:
    """The console script of a server whose settings all come from the environment: `--help`
    shows `start`'s docstring, any other argument is refused (one line, exit code 2) before
    anything starts."""
    cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    cli.command(name=prog)(start)
    run(cli, prog, argv)
