"""The in-process rate-limit storage with many live keys: upstream's clean-up against the paced
one the services use (`runtime/rate_limit_memory.py`), next to the raw limit: no clean-up.

Each round builds a storage, hits `--keys` distinct keys once with the services' default rule
(`10/second;300/minute`, so each key lives a minute), then hits one key `--rate` times a second
for `--seconds` (the moving window, as the services count), and measures the CPU this process
used meanwhile (`time.process_time`: every thread, the clean-up's included). Three storages, in
alternating rounds (`--rounds`):

- `upstream`: `limits`' `MemoryStorage` (a clean-up pass after each hit once the last ended, a
  thread hop per live key in each pass);
- `paced`: `PacedMemoryStorage` (a pass at most once a second, on the event loop);
- `raw`: the same storage with no clean-up at all, the floor of the hits alone.

Prints the median cores of each and paced / raw, upstream / raw.

    .venv/bin/python bench/rate_limit_memory.py
    .venv/bin/python bench/rate_limit_memory.py --keys 100000 --seconds 3
"""

import argparse
import asyncio
import statistics
import time

from limits import parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from runtime.rate_limit_memory import PacedMemoryStorage
from runtime.rate_limit_settings import DEFAULT_RATE_LIMIT


class NoCleanUp(MemoryStorage):
    async def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - upstream's, mangled
        """Never forgets an entry: what the hits alone cost."""


STORAGES: dict[str, type[MemoryStorage]] = {
    "upstream": MemoryStorage,
    "paced": PacedMemoryStorage,
    "raw": NoCleanUp,
}


async def cores_used(storage: MemoryStorage, keys: int, rate: float, seconds: float) -> float:
    limiter = MovingWindowRateLimiter(storage)
    rules = parse_many(DEFAULT_RATE_LIMIT)
    for key in range(keys):
        for rule in rules:
            await limiter.hit(rule, f"caller-{key}")
    started, cpu = time.monotonic(), time.process_time()
    hits = 0
    while (elapsed := time.monotonic() - started) < seconds:
        for rule in rules:
            await limiter.hit(rule, "hot-caller")
        hits += 1
        await asyncio.sleep(max(0.0, hits / rate - elapsed))
    return (time.process_time() - cpu) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000, help="live keys besides the hot one")
    parser.add_argument("--rate", type=float, default=200.0, help="hits per second on it")
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cores: dict[str, list[float]] = {name: [] for name in STORAGES}
    for _ in range(args.rounds):
        for name, storage in STORAGES.items():
            used = asyncio.run(cores_used(storage(), args.keys, args.rate, args.seconds))
            cores[name].append(used)
    median = {name: statistics.median(values) for name, values in cores.items()}
    print(
        f"{args.keys:,} live keys, {args.rate:g} hits/s on another, median of {args.rounds}"
        f" rounds of {args.seconds:g} s; cores used by this process:"
    )
    for name, value in median.items():
        print(f"  {name:9} {value:6.3f}   x raw {value / median['raw']:6.2f}")


if __name__ == "__main__":
    main()
