"""The cost of one rate-limit check against Redis, next to the raw limit: one Redis round trip.

In one run, on one asyncio connection pool to `--redis` (database 15, flushed first):
(a) raw: `INCR` awaited one after another (redis-py asyncio, as the check uses);
(b) each strategy: `RateLimits.hit` one after another for one caller and route, with a limit
    no request reaches (`moving-window`: a Lua script over a sorted set; `fixed-window`: INCR
    and EXPIRE).
Prints checks per second, the p50 / p99 latency and the ratio b/a.

(c) with `--concurrency N`, the same again with N callers at once (N tasks, each awaiting its
    calls one after another, as N requests in flight do): raw `INCR`; each strategy's check
    through the library's own `RedisStorage` (a round trip per check) and through the
    `PipelinedRedisStorage` the services use (the checks of one loop turn in one pipeline).
    Prints checks per second, the CPU per check of this process (`time.process_time`) and the
    checks per pipeline.

    .venv/bin/python bench/rate_limit_check.py --count 5000
    .venv/bin/python bench/rate_limit_check.py --count 20000 --concurrency 16
"""

import argparse
import asyncio
import functools
import statistics
import time
from collections.abc import Awaitable, Callable

import redis.asyncio
from limits import parse
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from runtime.rate_limit_pipeline import PipelinedRedisStorage
from runtime.rate_limits import Counted, rate_limits_from_settings
from runtime.settings import CommonSettings

STRATEGIES = {"moving-window": MovingWindowRateLimiter, "fixed-window": FixedWindowRateLimiter}


async def timed(call: Callable[[], Awaitable[object]], count: int) -> tuple[float, list[float]]:
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        before = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - before)
    return count / (time.perf_counter() - started), latencies


def row(label: str, rate: float, latencies: list[float], raw: float) -> str:
    p50 = statistics.median(latencies) * 1000
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    figures = f"{rate:>9,.0f} /s   p50 {p50:.3f} ms   p99 {p99:.3f} ms"
    return f"  {label:<14} {figures}   ratio {rate / raw:.2f}"


async def main(url: str, count: int) -> None:
    client = redis.asyncio.Redis.from_url(url)
    await client.flushdb()
    raw, raw_latencies = await timed(lambda: client.incr("bench:raw"), count)
    lines = [row("raw INCR", raw, raw_latencies, raw)]
    caller = Counted("sub:bench")
    for strategy in ("moving-window", "fixed-window"):
        await client.flushdb()  # the strategies keep one key each, of different types
        settings = CommonSettings(
            redis_url=url, rate_limit_default="100000000/minute", rate_limit_strategy=strategy
        )
        async with rate_limits_from_settings(settings) as limits:
            rate, latencies = await timed(lambda: limits.hit("GET /bench", caller), count)
        lines.append(row(strategy, rate, latencies, raw))
    await client.flushdb()
    await client.aclose()
    print(f"{count} sequential calls each, Redis {url}")
    print("\n".join(lines))


async def concurrently(
    call: Callable[[], Awaitable[object]], count: int, callers: int
) -> tuple[float, float]:
    """`count` calls by `callers` tasks at once: calls per second and CPU microseconds per call."""
    per_caller = count // callers

    async def caller() -> None:
        for _ in range(per_caller):
            await call()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(callers)))
    done = per_caller * callers
    return done / (time.perf_counter() - started), (time.process_time() - cpu) / done * 1e6


def storage_of(label: str, url: str) -> Storage:
    if label == "library":
        return RedisStorage(f"async+{url}", implementation="redispy")
    return PipelinedRedisStorage(f"async+{url}")


async def concurrent(url: str, count: int, callers: int) -> None:
    client = redis.asyncio.Redis.from_url(url, max_connections=callers)
    await client.flushdb()
    raw, raw_cpu = await concurrently(lambda: client.incr("bench:raw"), count, callers)
    lines = [f"  {'raw INCR':<32} {raw:>9,.0f} /s   {raw_cpu:6.1f} us CPU   ratio 1.00"]
    limit = parse("100000000/minute")
    for strategy, limiter_class in STRATEGIES.items():
        for label in ("library", "pipelined"):
            await client.flushdb()
            storage = storage_of(label, url)
            hit = functools.partial(limiter_class(storage).hit, limit, "GET /b", "k")
            rate, cpu = await concurrently(hit, count, callers)
            batch = getattr(storage, "batch", None)
            per_pipeline = f"   {batch.calls / batch.pipelines:5.1f} per pipeline" if batch else ""
            name = f"{strategy}, {label}"
            lines.append(
                f"  {name:<32} {rate:>9,.0f} /s   {cpu:6.1f} us CPU   ratio {rate / raw:.2f}"
                + per_pipeline
            )
            await storage.bridge.get_connection().aclose()  # type: ignore[attr-defined]
    await client.flushdb()
    await client.aclose()
    print(f"{count} calls by {callers} concurrent callers, Redis {url}")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=0, help="(c) with this many callers")
    arguments = parser.parse_args()
    if arguments.concurrency:
        asyncio.run(concurrent(arguments.redis, arguments.count, arguments.concurrency))
    else:
        asyncio.run(main(arguments.redis, arguments.count))
