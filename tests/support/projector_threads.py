"""The stack's projector in a test's process: on an event loop of its own thread, as the single
projector or, when the settings say `partitioned`, as one worker of the partitioned mode."""

import asyncio
import threading
import time
from collections.abc import Callable

from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings
from eventlog.envelope import PARTITIONS
from projections.consumers import ConsumerOptions
from projections.stack import StackProjector
from projections.workers import ProjectorWorker

QUICK = ConsumerOptions(batch_size=16, fetch_timeout=0.2, pauses=(0.1,))


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


class ProjectorThread:
    """Entered once it runs: the single projector leads, or the worker holds `holding`
    partitions (all of them by default: the first worker alone)."""

    def __init__(
        self,
        settings: Settings,
        name: str = "testworker",
        *,
        holding: int = PARTITIONS,
        options: ConsumerOptions = QUICK,
        contexts: Registry = REGISTRY,
    ) -> None:
        """`contexts`: the contexts it projects (all registered ones by default)."""
        self.projector = StackProjector(settings, options=options, contexts=contexts)
        partitioned = settings.projector_mode == "partitioned"
        self.worker = ProjectorWorker(self.projector, name) if partitioned else None
        self.holding = holding
        self._started = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def __enter__(self) -> "ProjectorThread":
        self._thread.start()
        assert self._started.wait(20), "the projector did not start"
        if (worker := self.worker) is not None:
            wanted = self.holding
            wait_for(lambda: len(worker.held) >= wanted, f"the worker holds {wanted} partitions")
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the projector did not stop"

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            if self.worker is not None:
                self._started.set()
                await self.worker.run(self._stop)
                return
            assert await self.projector.lead(asyncio.Event())
            await self.projector.start()
            self._started.set()
            await self._stop.wait()
        finally:
            await self.projector.close()

    def sample(self, name: str, labels: dict[str, str]) -> float | None:
        return self.projector.metrics.registry.get_sample_value(name, labels)
