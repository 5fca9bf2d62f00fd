"""Which version of each read model to read: the active pointer `rm_active` of the read database
(`readmodels.versions`), cached for a moment.

A rebuild flips the pointer in the transaction that verified the new version; the old version
stays intact until it is retired, so a reader that still holds the old value for up to `ttl`
reads a complete model, never an empty one. No row (or no table yet) means version 1.
"""

import threading
import time
from collections.abc import Callable

from readmodels.catalog import ReadModel
from readmodels.sql import SqlDatabase
from readmodels.versions import active_versions

DEFAULT_TTL = 0.25
"""Seconds a resolved pointer is trusted."""


class ActiveVersions:
    def __init__(
        self,
        database: SqlDatabase,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = database
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}
        self._expires = float("-inf")

    def version(self, name: str) -> int:
        with self._lock:
            if self._clock() >= self._expires:
                self._versions = self._read()
                self._expires = self._clock() + self._ttl
            return self._versions.get(name, 1)

    def resolve(self, model: ReadModel) -> ReadModel:
        """The read model at its active version."""
        return model.at(self.version(model.name))

    def _read(self) -> dict[str, int]:
        try:
            with self._db.transaction(write=False) as tx:
                pointers = active_versions(tx)
        except Exception as error:
            if self._db.dialect.missing_table(error, "rm_active"):
                return {}
            raise
        return {name: version for name, (version, _swapped_at) in pointers.items()}
