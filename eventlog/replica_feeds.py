"""The feeds of a context's replicas (`eventlog.replicas`), and waiting for one to reach a position.

A feed brings an upstream's log to an `Intake`: a replica's, or a tracked process's.

- `StoreTail`: when this process can read the upstream's event store (both contexts served
  here, or the embedded mode's SQLite files), every lookup first takes in what the log holds
  beyond the checkpoint (`CommandService.replica_refreshers`): a command sees every upstream
  event committed before it, at the cost of one read of the log when nothing is new. It reads
  the kinds of events the intake needs alone (`eventlog.log_pages`).
- `DrivenTail`: the same, driven by a thread of its own (woken by the upstream's commits, with
  a short poll as the backstop), for an intake nothing looks up, such as a reaction.
- `StreamFeed` (`eventlog.replica_stream`): when the upstream runs elsewhere, its JetStream
  stream.

Either way the intake is exactly-once in effect, whatever is redelivered.
"""

import asyncio
import logging
from typing import Protocol

from eventlog.log_pages import PageSource
from eventlog.replicas import Intake
from runtime.polling import PollingThread

log = logging.getLogger("strata.replicas")

PAGE_SIZE = 500


class ReplicaFeed(Protocol):
    """A running feed of one intake (of a replica, or of a tracked process)."""

    follower: str
    """The context (or process) that takes the upstream's events in."""

    @property
    def upstream(self) -> str: ...

    def position(self) -> int:
        """The last upstream position the intake has taken in (as far as this feed knows)."""

    async def reach(self, position: int, timeout: float) -> bool:
        """Wait, at most `timeout` seconds, until the intake has taken in `position`."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StoreTail:
    def __init__(
        self,
        follower: str,
        intake: Intake,
        source: PageSource,
        *,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.follower = follower
        self.intake = intake
        self._source = source
        self._page_size = page_size
        self._position = 0

    def catch_up(self) -> int:
        """Take in the upstream's log up to its end (blocking); the position reached.

        Concurrent calls are safe (the intake ignores what it already holds), so none waits
        for another."""
        upstream, kinds = self.intake.upstream, self.intake.kinds
        position = self.intake.checkpoint().position
        while True:
            page = self._source.select_page(upstream, position, self._page_size, kinds)
            if page.reached > position:
                checkpoint = self.intake.take_in(page.envelopes, reached=page.reached)
                if checkpoint is not None:
                    position = checkpoint.position
            if not page.full:
                self._position = max(self._position, position)
                return position

    @property
    def upstream(self) -> str:
        return self.intake.upstream

    def position(self) -> int:
        return self._position

    async def reach(self, position: int, timeout: float) -> bool:
        reached = await asyncio.wait_for(asyncio.to_thread(self.catch_up), timeout)
        return reached >= position

    async def start(self) -> None:
        """Nothing runs between lookups."""

    async def stop(self) -> None:
        """Nothing runs between lookups."""


class DrivenTail(StoreTail):
    POLL_INTERVAL = 0.5
    SPACING = 0.02
    """A catch-up costs a few transactions however few events it takes in, and a busy upstream
    commits hundreds of times a second: the commits of 20 ms are taken in together."""

    def __init__(self, follower: str, intake: Intake, source: PageSource) -> None:
        super().__init__(follower, intake, source)
        self._thread = PollingThread(
            f"{follower}-follows-{intake.upstream}",
            self.catch_up,
            interval=self.POLL_INTERVAL,
            spacing=self.SPACING,
            log=log,
        )

    def wake(self, _committed_in: str | None = None) -> None:
        """Take the new upstream events in now (a commit listener of the upstream)."""
        self._thread.wake()

    async def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self._thread.stop)
