"""The stack's projector in a test's process: on an event loop of its own thread, as the single
projector or, when the settings say `partitioned`, as one worker of the partitioned mode."""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self

from redis import Redis

from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings
from eventlog.envelope import PARTITIONS
from eventlog.jetstream import context_stream
from projections.consumers import ConsumerOptions
from projections.stack import StackProjector
from projections.workers import ProjectorWorker
from readmodels.sql import PostgresDatabase
from tests.support.nats import delete_streams, new_namespace, require_nats
from tests.support.postgres import require_postgres, scratch_databases, url_settings
from tests.support.read_models import require_redis, scratch_redis_database

QUICK = ConsumerOptions(batch_size=16, fetch_timeout=0.2, pauses=(0.1,))


@contextmanager
def stack_settings(**updates: Any) -> Iterator[Settings]:
    """Settings of scratch stores for every context, a scratch Redis database and a NATS
    namespace of their own (its streams deleted afterwards), with `updates`."""
    nats = require_nats()
    with (
        scratch_databases(require_postgres(), *REGISTRY.names, "read") as urls,
        scratch_redis_database(require_redis()) as redis_url,
    ):
        built = Settings(
            **url_settings(urls),
            redis_url=redis_url,
            nats_url=nats,
            stream_namespace=new_namespace(),
            group_commit=False,
            **updates,
        )
        yield built
        delete_streams(nats, *(context_stream(c, built).name for c in REGISTRY.names))


@contextmanager
def read_stores(settings: Settings) -> Iterator[tuple[PostgresDatabase, Redis]]:
    """The read database and Redis of `settings`, closed afterwards."""
    db = PostgresDatabase(str(settings.read_database_url))
    redis = Redis.from_url(str(settings.redis_url), decode_responses=True)
    try:
        yield db, redis
    finally:
        db.close()
        redis.close()


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

    def __enter__(self) -> Self:
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
