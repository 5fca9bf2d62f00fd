"""`PacedMemoryStorage`: upstream's clean-up replaced (by its private, mangled names), paced,
and done on the event loop; what the limits allow unchanged. No I/O."""

import asyncio
import time
from typing import Any

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from runtime import rate_limit_memory
from runtime.rate_limit_memory import PacedMemoryStorage

REPLACED = ("_MemoryStorage__schedule_expiry", "_MemoryStorage__expire_events")


def no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("the clean-up hopped to a thread")

    monkeypatch.setattr(asyncio, "to_thread", refuse)


@pytest.mark.parametrize("name", REPLACED)
def test_upstream_still_has_the_methods_it_replaces(name: str) -> None:
    """If `limits` renames them, the replacements would go unused: this fails first."""
    assert callable(getattr(MemoryStorage, name, None))
    assert getattr(PacedMemoryStorage, name) is not getattr(MemoryStorage, name)


def test_a_pass_forgets_what_expired_and_keeps_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    no_threads(monkeypatch)
    now = [1_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    storage = PacedMemoryStorage()

    async def hits_then_a_pass() -> None:
        assert await storage.acquire_entry("gone", limit=5, expiry=10)
        assert await storage.acquire_entry("kept", limit=5, expiry=10)
        await storage.incr("count-gone", expiry=10)
        now[0] += 8
        assert await storage.acquire_entry("kept", limit=5, expiry=10)
        await storage.incr("count-kept", expiry=10)
        now[0] += 4  # the first three expired, the last two not
        await storage._MemoryStorage__expire_events()

    asyncio.run(hits_then_a_pass())
    assert set(storage.events) == {"kept"}
    assert len(storage.events["kept"]) == 1
    assert set(storage.expirations) == {"count-kept"}
    assert set(storage.storage) == {"count-kept"}


def test_hits_meanwhile_share_one_pass_that_runs_later(monkeypatch: pytest.MonkeyPatch) -> None:
    no_threads(monkeypatch)
    monkeypatch.setattr(rate_limit_memory, "EXPIRY_SECONDS", 0.05)
    storage = PacedMemoryStorage()

    async def hits_then_the_pass() -> None:
        assert await storage.acquire_entry("first", limit=5, expiry=0)
        pending = storage.timer
        assert pending is not None
        for key in range(100):
            assert await storage.acquire_entry(f"key-{key}", limit=5, expiry=0)
        assert storage.timer is pending
        assert len(storage.events) == 101  # nothing forgotten before the pass
        await pending

    asyncio.run(hits_then_the_pass())
    assert storage.events == {}


def test_a_pass_lets_other_tasks_in_between_batches_of_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rate_limit_memory, "KEYS_PER_TURN", 10)
    storage = PacedMemoryStorage()
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    async def a_pass_beside_another_task() -> None:
        for key in range(35):
            assert await storage.acquire_entry(f"key-{key}", limit=5, expiry=0)
        counter = asyncio.create_task(count_turns())
        await asyncio.sleep(0)
        started = turns
        await storage._MemoryStorage__expire_events()
        counter.cancel()
        assert turns - started >= 3  # 35 keys, 10 a turn

    asyncio.run(a_pass_beside_another_task())
    assert storage.events == {}


def test_the_moving_window_allows_what_it_allowed() -> None:
    limiter = MovingWindowRateLimiter(PacedMemoryStorage())
    three = parse("3/minute")

    async def hits() -> list[bool]:
        return [await limiter.hit(three, caller) for caller in ["a"] * 4 + ["b"]]

    assert asyncio.run(hits()) == [True, True, True, False, True]
