"""The cost of one rate-limit check against Redis, next to the raw limit: one Redis round trip.

In one run, on one asyncio connection pool to `--redis` (database 15, flushed first):
(a) raw: `INCR` awaited one after another (redis-py asyncio, as the check uses);
(b) each strategy: `RateLimits.hit` one after another for one caller and route, with a limit
    no request reaches (`moving-window`: a Lua script over a sorted set; `fixed-window`: INCR
    and EXPIRE).
Prints checks per second, the p50 / p99 latency and the ratio b/a.

    .venv/bin/python bench/rate_limit_check.py --count 5000
"""

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import redis.asyncio

from runtime.rate_limits import Counted, rate_limits_from_settings
from runtime.settings import CommonSettings


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--count", type=int, default=5000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.redis, arguments.count))
