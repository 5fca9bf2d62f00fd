"""A thread that runs one step now and then: at once when woken, else every `interval`; after a
failure, after a pause that doubles up to `max_pause`. With a `spacing`, a step starts at least
that long after the last one ended, however often it is woken meanwhile: wakes that come while
it waits are served by one step. How the embedded mode follows a log."""

import logging
import threading
from collections.abc import Callable


class PollingThread:
    def __init__(
        self,
        name: str,
        step: Callable[[], object],
        *,
        interval: float,
        max_pause: float = 5.0,
        spacing: float = 0.0,
        log: logging.Logger,
    ) -> None:
        self._step = step
        self._interval = interval
        self._spacing = spacing
        self._max_pause = max_pause
        self._log = log
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        pause = self._interval
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._step()
            except Exception:  # noqa: BLE001 - logged; the loop must outlive any one failure
                self._log.exception("%s failed; retrying", self._thread.name)
                pause = min(self._max_pause, pause * 2)
            else:
                pause = self._interval
            if self._spacing and self._stopping.wait(self._spacing):
                return
            self._wake.wait(max(0.0, pause - self._spacing))
