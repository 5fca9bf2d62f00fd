"""Pipelined rate-limit hits on a real Redis: one round trip for the hits of one loop turn, the
`limits` library's counts, keys and errors."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, RateLimiter
from limits.errors import StorageError

from runtime.rate_limit_pipeline import PipelinedRedisStorage
from tests.support.read_models import require_redis, scratch_redis_database

PREFIX = "test:rate-limits"


@pytest.fixture
def redis_url() -> Iterator[str]:
    with scratch_redis_database(require_redis()) as url:
        yield url


@asynccontextmanager
async def pipelined(url: str) -> AsyncIterator[PipelinedRedisStorage]:
    storage = PipelinedRedisStorage(f"async+{url}", key_prefix=PREFIX, wrap_exceptions=True)
    try:
        yield storage
    finally:
        await storage.bridge.get_connection().aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("strategy", [MovingWindowRateLimiter, FixedWindowRateLimiter])
def test_concurrent_hits_leave_in_one_pipeline_and_count_exactly(
    redis_url: str, strategy: type[RateLimiter]
) -> None:
    limit = parse("5/minute")

    async def scenario() -> None:
        async with pipelined(redis_url) as storage:
            limiter = strategy(storage)
            hits = (limiter.hit(limit, "GET /x", "sub:a") for _ in range(20))
            allowed = await asyncio.gather(*hits)
            assert allowed == [True] * 5 + [False] * 15  # counted in the order they were made
            assert (storage.batch.pipelines, storage.batch.calls) == (1, 20)
            assert await limiter.hit(limit, "GET /x", "sub:b")  # another caller's own count

    asyncio.run(scenario())


def test_the_counts_are_the_librarys_own(redis_url: str) -> None:
    """The same keys and scripts: hits through the pipeline count for the library's storage."""
    limit = parse("5/minute")

    async def scenario() -> None:
        plain = MovingWindowRateLimiter(
            RedisStorage(f"async+{redis_url}", implementation="redispy", key_prefix=PREFIX)
        )
        async with pipelined(redis_url) as storage:
            limiter = MovingWindowRateLimiter(storage)
            await asyncio.gather(*(limiter.hit(limit, "r", "k") for _ in range(3)))
            assert (await plain.get_window_stats(limit, "r", "k")).remaining == 2
            assert await plain.hit(limit, "r", "k")
            assert await limiter.hit(limit, "r", "k")
            assert not await limiter.hit(limit, "r", "k")
            assert not await plain.hit(limit, "r", "k")

    asyncio.run(scenario())


def test_scripts_redis_forgot_are_loaded_again(redis_url: str) -> None:
    limit = parse("3/minute")

    async def scenario() -> None:
        async with pipelined(redis_url) as storage:
            limiter = MovingWindowRateLimiter(storage)
            assert await limiter.hit(limit, "r", "k")
            await storage.bridge.get_connection().script_flush()  # type: ignore[attr-defined]
            allowed = await asyncio.gather(*(limiter.hit(limit, "r", "k") for _ in range(3)))
            assert allowed == [True, True, False]

    asyncio.run(scenario())


def test_an_unreachable_redis_is_a_storage_error_for_every_hit() -> None:
    async def scenario() -> list[object]:
        closed = PipelinedRedisStorage(
            "async+redis://127.0.0.1:1/0", wrap_exceptions=True, socket_connect_timeout=1
        )
        limiter = FixedWindowRateLimiter(closed)
        hits = (limiter.hit(parse("5/minute"), "r", "k") for _ in range(3))
        return await asyncio.gather(*hits, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(outcome, StorageError) for outcome in outcomes), outcomes


def test_a_caller_that_stops_waiting_leaves_the_others_their_answers(redis_url: str) -> None:
    limit = parse("10/minute")

    async def scenario() -> None:
        async with pipelined(redis_url) as storage:
            limiter = MovingWindowRateLimiter(storage)
            impatient = asyncio.ensure_future(limiter.hit(limit, "r", "k"))
            patient = asyncio.ensure_future(limiter.hit(limit, "r", "k"))
            await asyncio.sleep(0)  # both hits are queued
            impatient.cancel()
            assert await patient
            with pytest.raises(asyncio.CancelledError):
                await impatient
            stats = await limiter.get_window_stats(limit, "r", "k")
            assert stats.remaining == 8  # the abandoned hit left with the other: it counts

    asyncio.run(scenario())
