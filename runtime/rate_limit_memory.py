"""`PacedMemoryStorage`: the `limits` library's in-process storage, its clean-up paced.

Upstream's storage forgets expired entries in a pass over every key, started by the first hit
after the last pass ended, and it hops to a worker thread (`asyncio.to_thread`) for each key's
search of the expired entries. Under steady hits the passes run back to back, one thread hop
per live key each: with the keys of 10,000 callers of a route alive (a minute, by default) they
kept 0.95 of a core busy (`bench/rate_limit_memory.py`). Here a pass starts at most once
per `EXPIRY_SECONDS` and runs on the event loop, letting other tasks in every `KEYS_PER_TURN`
keys.

The pass only frees memory: every read of a window or a counter compares the entries' times
itself, so when a pass runs never changes what a limit allows.

Upstream's pass is a private method, which this class replaces by its mangled name; a test
(tests/unit/test_rate_limit_memory.py) fails if upstream renames it.
"""

import asyncio
import bisect
import time

from limits.aio.storage import MemoryStorage

EXPIRY_SECONDS = 1.0
KEYS_PER_TURN = 1_000


class PacedMemoryStorage(MemoryStorage):
    async def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - upstream's, mangled
        if self.timer is None or self.timer.done():
            self.timer = asyncio.create_task(self._expire_later())

    async def _expire_later(self) -> None:
        await asyncio.sleep(EXPIRY_SECONDS)
        await self._MemoryStorage__expire_events()

    async def _MemoryStorage__expire_events(self) -> None:  # noqa: N802 - upstream's, mangled
        now = time.time()
        for count, key in enumerate(list(self.events), start=1):
            self._forget_expired_events(key, now)
            if count % KEYS_PER_TURN == 0:
                await asyncio.sleep(0)
        for key in list(self.expirations):
            if self.expirations[key] <= now:
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
                self.locks.pop(key, None)

    def _forget_expired_events(self, key: str, now: float) -> None:
        """Drop the key's entries that have expired (the list runs from the newest entry to the
        oldest), and the key itself when none is left. No await: nothing interleaves."""
        events = self.events.get(key)
        if events:
            del events[bisect.bisect_left(events, -now, key=lambda entry: -entry.expiry) :]
        if not events:
            self.events.pop(key, None)
            self.locks.pop(key, None)
