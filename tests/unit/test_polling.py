"""`PollingThread`: woken at once, or spaced. The steps signal what they did; no test waits on
a sleep to see that something happened, only to see that nothing more does."""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from runtime.polling import PollingThread

LONG = 30.0  # an interval no test reaches: every step after the first is a wake's
WAIT = 10.0  # how long a test waits for a step that must come


class Steps:
    """Counts the steps, each with the instant it started and ended."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._changed = threading.Condition()

    def __call__(self) -> None:
        started = time.monotonic()
        with self._changed:
            self.spans.append((started, time.monotonic()))
            self._changed.notify_all()

    def wait_for(self, count: int) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.spans) >= count, WAIT)


@contextmanager
def running(steps: Steps, spacing: float = 0.0) -> Iterator[PollingThread]:
    thread = PollingThread(
        "test-poller", steps, interval=LONG, spacing=spacing, log=logging.getLogger("test")
    )
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def test_a_wake_runs_a_step_at_once() -> None:
    steps = Steps()
    with running(steps) as thread:
        steps.wait_for(1)
        thread.wake()
        steps.wait_for(2)


def test_wakes_during_the_spacing_are_served_by_one_step_after_it() -> None:
    spacing = 0.3
    steps = Steps()
    with running(steps, spacing) as thread:
        steps.wait_for(1)
        for _ in range(100):
            thread.wake()
        steps.wait_for(2)
        time.sleep(2 * spacing)  # time for a third step, which must not come
        assert len(steps.spans) == 2
    (_, first_ended), (second_started, _) = steps.spans
    assert second_started - first_ended >= spacing


def test_stop_does_not_wait_for_the_spacing() -> None:
    steps = Steps()
    thread = PollingThread(
        "test-poller", steps, interval=LONG, spacing=LONG, log=logging.getLogger("test")
    )
    thread.start()
    steps.wait_for(1)
    began = time.monotonic()
    thread.stop(timeout=WAIT)
    assert time.monotonic() - began < WAIT
    assert len(steps.spans) == 1
