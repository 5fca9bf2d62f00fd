"""The command line of a generator of checked-in files (`python -m contexts.generate`,
`python -m gateway.generate`): without arguments it writes the files that are out of date; with
`--check` it writes nothing and exits 1 naming the stale ones."""

import sys
from collections.abc import Callable


def run_generator(
    module: str,
    stale_files: Callable[[], list[str]],
    write_files: Callable[[], list[str]],
    argv: list[str] | None = None,
    usage: str | None = None,
) -> None:
    """Check or write, as `python -m <module> [--check]` was asked (`argv`, else sys.argv);
    other arguments exit with `usage`."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments not in ([], ["--check"]):
        sys.exit(usage or f"usage: python -m {module} [--check]")
    if arguments:
        stale = stale_files()
        if stale:
            sys.exit(f"out of date (run python -m {module}): {', '.join(stale)}")
        print("up to date")
        return
    written = write_files()
    print("written: " + (", ".join(written) if written else "nothing (all up to date)"))
