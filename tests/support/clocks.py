"""A clock that runs with real time and jumps forward when a test says so: jobs come due as
they would, and a test reaches a deadline without waiting for it."""

import threading
from datetime import UTC, datetime, timedelta


class JumpingClock:
    def __init__(self) -> None:
        self._ahead = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._ahead

    def jump(self, delta: timedelta) -> None:
        with self._lock:
            self._ahead += delta
