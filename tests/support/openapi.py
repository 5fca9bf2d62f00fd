"""Apps built for their OpenAPI document only: building one opens nothing (its lifespan would),
but it is given a data directory all the same."""

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path


@cache
def document_only_data_dir() -> Path:
    """A temporary data directory for such apps, removed at exit: whatever one of them might
    write (a development key) never lands in the repository."""
    folder = Path(tempfile.mkdtemp(prefix="strata-document-only-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
