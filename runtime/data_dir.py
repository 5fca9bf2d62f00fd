"""The data folder of the embedded mode (`STRATA_DATA_DIR`), judged before a process serves.

Every SQLite file of a process (event stores, read models, identity, the development key) lives
there, and each is opened when first needed: a folder that cannot be one (a file is there, or
a file is where one of its parents should be) would otherwise be a traceback in the server's
lifespan. As a start check (`runtime.http.preflight`) it is one line and exit code 1, like a
setting of the wrong type.
"""

import os
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path

VARIABLE = "STRATA_DATA_DIR"


def check_data_dir(path: Path) -> None:
    """Make the data folder if it is missing; raise `ValueError` saying why if it cannot be
    the data folder."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        why = _why(path, error)
        raise ValueError(f"{VARIABLE}: {str(path)!r} cannot be the data folder: {why}") from error
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise ValueError(f"{VARIABLE}: {str(path)!r} cannot be the data folder: not writable")


def check_sqlite_files(files: Mapping[str, Path]) -> None:
    """Each of `files` (by what it holds: "the users event store") that exists opens as a
    SQLite database; raise `ValueError` naming the first that does not (overwritten, or a
    folder where the file should be). A missing one is made when first needed."""
    for what, path in files.items():
        if not path.exists():
            continue
        try:
            with closing(sqlite3.connect(path)) as database:
                database.execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error as error:
            raise ValueError(f"{VARIABLE}: {what} {path} cannot be opened: {error}") from None


def _why(path: Path, error: OSError) -> str:
    for folder in (path, *path.parents):
        if folder.exists() and not folder.is_dir():
            return f"{str(folder)!r} is a file, not a folder"
    return error.strerror or type(error).__name__
