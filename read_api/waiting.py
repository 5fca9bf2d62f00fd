"""Read-your-writes: wait, bounded, until the checkpoints behind an endpoint reach a position.

Projectors announce every committed checkpoint (Redis `PUBLISH rm:ckpt`, PostgreSQL
`NOTIFY rm_ckpt`); listeners call `CheckpointWatch.notify`, which wakes the waiters. Waiters
then re-read the checkpoints, and concurrent waiters share one read: however many requests
wait, a burst of notifications costs one read of the checkpoint store. `backstop` bounds how
long a waiter sleeps without a notification: a few milliseconds in the embedded mode, which
polls, and a second in the stack mode, as insurance against a lost listener connection.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from readmodels.checkpoints import Positions

Reached = Callable[[Positions], bool]


@dataclass(frozen=True)
class WaitOutcome:
    reached: bool
    positions: Positions


class CheckpointWatch:
    def __init__(self, read: Callable[[], Awaitable[Positions]], *, backstop: float) -> None:
        self._read = read
        self._backstop = backstop
        self._tick = 0
        self._changed = asyncio.Event()
        self._inflight: tuple[int, asyncio.Future[Positions]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Accept `notify_threadsafe` calls, forwarded to this (the app's) event loop."""
        self._loop = loop

    def notify(self) -> None:
        """Checkpoints may have moved: wake every waiter. Call on the event loop."""
        self._tick += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def notify_threadsafe(self) -> None:
        """`notify` from another thread, such as an in-process projector."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                self._loop.call_soon_threadsafe(self.notify)

    async def _read_since(self, tick: int) -> tuple[int, Positions]:
        """Checkpoints from a read started at `tick` or later (joining one under way), with the
        tick that read started at. Asking for a tick not reached yet starts a fresh read."""
        self._tick = max(self._tick, tick)
        if self._inflight is None or self._inflight[0] < tick:
            read: asyncio.Future[Positions] = asyncio.ensure_future(self._read())
            read.add_done_callback(_retrieve)
            self._inflight = (self._tick, read)
        started, read = self._inflight
        return started, await asyncio.shield(read)

    async def wait_until(self, reached: Reached, timeout: float) -> WaitOutcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        need = self._tick + 1  # the first read starts after the request came in
        while True:
            changed = self._changed  # taken before reading, so no notification slips between
            started, positions = await self._read_since(need)
            if reached(positions):
                return WaitOutcome(True, positions)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return WaitOutcome(False, positions)
            try:
                await asyncio.wait_for(changed.wait(), min(remaining, self._backstop))
                need = self._tick  # a read that started after the notification
            except TimeoutError:
                need = started + 1  # the backstop: any read newer than the one just seen


def _retrieve(read: asyncio.Future[Positions]) -> None:
    # A failed read whose waiters all left must not log "exception was never retrieved".
    if not read.cancelled():
        read.exception()
