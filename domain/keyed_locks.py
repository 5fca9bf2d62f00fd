"""One lock per key, alive only while some thread holds or waits for it."""

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager


class KeyedLocks:
    """Serialises the callers that name one key; callers with different keys run in parallel.

    A lock lives in the table only while it has users, so the table stays as small as the
    number of keys in use at once.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        lock = self._enter(key)
        try:
            with lock:
                yield
        finally:
            self._leave(key)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)

    def _enter(self, key: Hashable) -> threading.Lock:
        with self._guard:
            lock, users = self._locks.get(key) or (threading.Lock(), 0)
            self._locks[key] = (lock, users + 1)
            return lock

    def _leave(self, key: Hashable) -> None:
        with self._guard:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
