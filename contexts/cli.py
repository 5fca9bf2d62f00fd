"""What the per-context processes' command lines share: `--context NAME`, checked against the
registry, and usage errors as one line with exit code 2."""

import sys
from typing import NoReturn

import typer

from contexts.registered import REGISTRY


def registered_context(name: str | None) -> str | None:
    """A typer callback: the name of a registered context (or no name, where it is optional)."""
    if name is not None and name not in REGISTRY:
        known = ", ".join(repr(known) for known in REGISTRY.names)
        raise typer.BadParameter(f"{name!r} is not one of {known}.")
    return name


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
