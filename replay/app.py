"""The `replay` command line: the typer app, its output modes, and its exit codes.

Commands live in their own modules and register themselves on `app`; `replay.main` imports them.
Every command prints for people by default (rich) and one JSON document with `--json`.

Exit codes:
    0  done
    1  the operation failed (e.g. a rebuild did not verify, a store is unreachable)
    2  bad arguments (unknown context, malformed id or time, unknown projection, ...)
    3  not found (no such aggregate, no state at that time, no such dead letter, no such
       parked job)
"""

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings
from readmodels.sql import READ_DATABASE
from runtime.cli import error_line
from runtime.settings import load_settings, settings_model

PROG = "replay"
OK, FAILED, BAD_ARGUMENTS, NOT_FOUND = 0, 1, 2, 3
LARGEST_NUMBER = 2**63 - 1
"""The largest version, position or id a store holds (PostgreSQL's bigint, SQLite's INTEGER):
a larger one is a bad argument, not a question for the store."""

app = typer.Typer(
    name=PROG,
    help="Point-in-time replay, history, diffs, projection rebuilds, dead letters, sagas and"
    " parked jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@dataclass
class Output:
    """Where a command's result goes: a rich console for people, or JSON on stdout."""

    as_json: bool
    console: Console

    def result(self, document: Any, human: "Any | None" = None) -> None:
        """Print `document` as JSON, or `human` (a rich renderable; default: the document)."""
        if self.as_json:
            sys.stdout.write(json.dumps(document, default=str, indent=2) + "\n")
        else:
            self.console.print(document if human is None else human)


def output(as_json: bool) -> Output:
    return Output(as_json, console())


PIPED_WIDTH = 1_000_000
"""The width of the lines printed when stdout is not a terminal: wider than any line."""


def console() -> Console:
    """A console for people. On a terminal it fits the terminal; piped (to a file, `grep`,
    `less -S`) it wraps nothing, as rich would at 80 columns, unless `COLUMNS` names a width."""
    for_terminal = Console(highlight=False)
    if for_terminal.is_terminal or "COLUMNS" in os.environ:
        return for_terminal
    return Console(highlight=False, width=PIPED_WIDTH, soft_wrap=True)


def fail(code: int, message: str) -> NoReturn:
    """One line on stderr, then exit with `code`: never a traceback."""
    sys.stderr.write(f"{PROG}: {error_line(message)}\n")
    raise typer.Exit(code)


def contexts(ctx: typer.Context) -> Registry:
    """The registered contexts, or the registry a caller passes as the command's `obj` (the way
    a test runs the commands on a context of its own)."""
    return ctx.obj if isinstance(ctx.obj, Registry) else REGISTRY


def settings(registry: Registry = REGISTRY) -> Settings:
    return load_settings(PROG, settings_model(registry.names))


def embedded_read_database(config: Settings) -> Path:
    """The embedded read database's file, which must be there (opening a missing one would
    create it empty); one line and exit 1 when it is not."""
    path = config.data_dir / READ_DATABASE
    if not path.is_file():
        fail(
            FAILED,
            f"no read database at {path} (set STRATA_DATA_DIR, or the"
            " STRATA_*_DATABASE_URL settings for the stack)",
        )
    return path


JsonOption = typer.Option(False, "--json", help="Print one JSON document instead of tables.")
