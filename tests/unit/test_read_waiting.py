"""CheckpointWatch: read-your-writes waits end on a notification, share reads, and are bounded."""

import asyncio
import time
from collections.abc import Callable

import pytest

from read_api.waiting import CheckpointWatch
from readmodels.checkpoints import Positions

KEY = ("orders", "orders")


class Checkpoints:
    """A fake checkpoint store that counts its reads."""

    def __init__(self, position: int = 0) -> None:
        self.position = position
        self.reads = 0
        self.fail: Exception | None = None

    async def read(self) -> Positions:
        self.reads += 1
        await asyncio.sleep(0.001)  # a read takes a moment, so concurrent waiters overlap it
        if self.fail is not None:
            raise self.fail
        return {KEY: self.position}


def at_least(position: int) -> Callable[[Positions], bool]:
    return lambda positions: positions.get(KEY, 0) >= position


def test_a_reached_position_returns_after_one_read() -> None:
    async def scenario() -> None:
        store = Checkpoints(5)
        watch = CheckpointWatch(store.read, backstop=10)

        outcome = await watch.wait_until(at_least(5), timeout=1)

        assert outcome.reached and outcome.positions == {KEY: 5}
        assert store.reads == 1

    asyncio.run(scenario())


def test_a_notification_ends_the_wait_at_once_without_polling() -> None:
    async def scenario() -> None:
        store = Checkpoints(1)
        watch = CheckpointWatch(store.read, backstop=10)  # no poll would come in time

        async def projector() -> float:
            await asyncio.sleep(0.05)
            store.position = 2
            watch.notify()
            return time.perf_counter()

        advanced = asyncio.create_task(projector())
        outcome = await watch.wait_until(at_least(2), timeout=5)
        lag = time.perf_counter() - await advanced

        assert outcome.reached
        assert lag < 0.05
        assert store.reads == 2

    asyncio.run(scenario())


def test_a_wait_that_is_not_satisfied_ends_after_the_timeout_with_what_it_saw() -> None:
    async def scenario() -> None:
        store = Checkpoints(3)
        watch = CheckpointWatch(store.read, backstop=0.05)
        started = time.perf_counter()

        outcome = await watch.wait_until(at_least(4), timeout=0.2)

        assert not outcome.reached and outcome.positions == {KEY: 3}
        assert 0.2 <= time.perf_counter() - started < 0.4
        assert 3 <= store.reads <= 7  # the backstop re-reads about every 50 ms

    asyncio.run(scenario())


def test_the_backstop_polls_when_no_notification_comes() -> None:
    async def scenario() -> None:
        store = Checkpoints(0)
        watch = CheckpointWatch(store.read, backstop=0.005)

        async def silent_projector() -> None:
            await asyncio.sleep(0.05)
            store.position = 1  # no notify: the embedded mode

        writer = asyncio.create_task(silent_projector())
        outcome = await watch.wait_until(at_least(1), timeout=1)
        await writer

        assert outcome.reached

    asyncio.run(scenario())


def test_waiters_woken_by_one_notification_share_one_read() -> None:
    async def scenario() -> None:
        store = Checkpoints(0)
        watch = CheckpointWatch(store.read, backstop=10)
        waiters = [
            asyncio.create_task(watch.wait_until(at_least(1), timeout=5)) for _ in range(100)
        ]
        await asyncio.sleep(0.05)
        assert store.reads == 100  # each request checks once when it comes in

        store.position = 1
        watch.notify()
        outcomes = await asyncio.gather(*waiters)

        assert all(outcome.reached for outcome in outcomes)
        assert store.reads == 101

    asyncio.run(scenario())


def test_polling_waiters_share_reads_too() -> None:
    async def scenario() -> None:
        store = Checkpoints(0)
        watch = CheckpointWatch(store.read, backstop=0.01)
        waiters = [
            asyncio.create_task(watch.wait_until(at_least(1), timeout=0.2)) for _ in range(50)
        ]
        await asyncio.gather(*waiters)

        # 50 first reads, then about one shared read per 10 ms poll, not one per waiter
        assert store.reads - 50 < 60

    asyncio.run(scenario())


def test_a_failing_read_fails_the_waiters() -> None:
    async def scenario() -> None:
        store = Checkpoints(0)
        store.fail = ConnectionError("down")
        watch = CheckpointWatch(store.read, backstop=10)

        with pytest.raises(ConnectionError):
            await watch.wait_until(at_least(1), timeout=1)

    asyncio.run(scenario())


def test_notify_threadsafe_wakes_waiters_from_another_thread() -> None:
    async def scenario() -> None:
        store = Checkpoints(0)
        watch = CheckpointWatch(store.read, backstop=10)
        watch.bind(asyncio.get_running_loop())

        def projector_thread() -> None:
            time.sleep(0.05)
            store.position = 1
            watch.notify_threadsafe()

        waiting = asyncio.create_task(watch.wait_until(at_least(1), timeout=5))
        await asyncio.to_thread(projector_thread)
        outcome = await asyncio.wait_for(waiting, 1)

        assert outcome.reached

    asyncio.run(scenario())
