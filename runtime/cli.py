"""What every console script shares: usage errors as one line with exit code 2."""

import sys
from typing import NoReturn

import typer


def run(cli: typer.Typer, prog: str, argv: list[str] | None = None) -> NoReturn:
    command = typer.main.get_command(cli)
    try:
        code = command.main(args=argv, prog_name=prog, standalone_mode=False)
    except typer.TyperException as error:  # bad arguments: exit code 2
        print(f"{prog}: {' '.join(error.format_message().split())}", file=sys.stderr)
        sys.exit(error.exit_code)
    except typer.Abort:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
