"""The feeds of a context's replicas (`eventlog.replicas`), and waiting for one to reach a position.

- `StoreTail`: when this process can read the upstream's event store (both contexts served
  here, or the embedded mode's SQLite files), every lookup first takes in what the log holds
  beyond the checkpoint (`CommandService.replica_refreshers`): a command sees every upstream
  event committed before it, at the cost of one read of the log when nothing is new.
- `StreamFeed` (`eventlog.replica_stream`): when the upstream runs elsewhere, its JetStream
  stream.

Either way the intake is `replicas.take_in`: exactly-once in effect, whatever is redelivered.
"""

import asyncio
from typing import Protocol

from eventlog.envelope import EnvelopeSource
from eventlog.replicas import Replica, ReplicaStore, take_in

PAGE_SIZE = 500


class ReplicaFeed(Protocol):
    """A running feed of one replica."""

    follower: str
    replica: Replica

    def position(self) -> int:
        """The last upstream position the replica has taken in (as far as this feed knows)."""

    async def reach(self, position: int, timeout: float) -> bool:
        """Wait, at most `timeout` seconds, until the replica has taken in `position`."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StoreTail:
    def __init__(
        self,
        follower: str,
        replica: Replica,
        store: ReplicaStore,
        source: EnvelopeSource,
        *,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.follower = follower
        self.replica = replica
        self._store = store
        self._source = source
        self._page_size = page_size
        self._position = 0

    def catch_up(self) -> int:
        """Take in the upstream's log up to its end (blocking); the position reached.

        Concurrent calls are safe (the intake ignores what it already holds), so none waits
        for another."""
        upstream = self.replica.upstream
        position = self._store.replica_checkpoint(upstream).position
        while True:
            page = self._source.select_envelopes(upstream, position, self._page_size)
            checkpoint = take_in(self._store, self.replica, page)
            if checkpoint is not None:
                position = checkpoint.position
            if len(page) < self._page_size:
                self._position = max(self._position, position)
                return position

    def position(self) -> int:
        return self._position

    async def reach(self, position: int, timeout: float) -> bool:
        reached = await asyncio.wait_for(asyncio.to_thread(self.catch_up), timeout)
        return reached >= position

    async def start(self) -> None:
        """Nothing runs between lookups."""

    async def stop(self) -> None:
        """Nothing runs between lookups."""
