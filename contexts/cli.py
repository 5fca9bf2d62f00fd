"""What the per-context processes' command lines share: `--context NAME`, checked against the
registry, and usage errors as one line with exit code 2 (`runtime.cli.run`)."""

import typer

from contexts.registered import REGISTRY
from runtime.cli import run

__all__ = ["registered_context", "run"]


def registered_context(name: str | None) -> str | None:
    """A typer callback: the name of a registered context (or no name, where it is optional)."""
    if name is not None and name not in REGISTRY:
        known = ", ".join(repr(known) for known in REGISTRY.names)
        raise typer.BadParameter(f"{name!r} is not one of {known}.")
    return name
