"""A projector worker's lag (projections/workers.py): held back as a slow database would (a
transaction of the test holds `rm_partition_checkpoints` locked), its lag in events and in
seconds grows in its metrics, per partition feed and per projection, and returns to 0 once it
catches up."""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from contexts.registered import REGISTRY
from contexts.settings import Settings
from eventlog.jetstream import context_stream
from eventlog.stores import Services, build_services
from projections import stack as projector_stack
from projections.consumers import ConsumerOptions
from projections.stack import StackProjector
from projections.workers import ProjectorWorker
from tests.support.nats import delete_streams, new_namespace, require_nats
from tests.support.postgres import require_postgres, scratch_databases, url_settings
from tests.support.read_models import require_redis, scratch_redis_database
from tests.support.relays import RelayThread, register_users, store_max, wait_until_relayed

CONTEXTS = REGISTRY.names
DIRECTORY = {"projection": "users_directory", "version": "1", "context": "users"}


@pytest.fixture
def settings() -> Iterator[Settings]:
    nats = require_nats()
    with (
        scratch_databases(require_postgres(), *CONTEXTS, "read") as urls,
        scratch_redis_database(require_redis()) as redis_url,
    ):
        built = Settings(
            **url_settings(urls),
            redis_url=redis_url,
            nats_url=nats,
            stream_namespace=new_namespace(),
            group_commit=False,
            projector_mode="partitioned",
            projector_rebalance_seconds=0.2,
        )
        yield built
        delete_streams(nats, *(context_stream(c, built).name for c in CONTEXTS))


class WorkerThread:
    """One projector worker on an event loop of its own thread; `sample` reads its metrics."""

    def __init__(self, settings: Settings) -> None:
        options = ConsumerOptions(batch_size=16, fetch_timeout=0.2, pauses=(0.1,))
        self.worker = ProjectorWorker(StackProjector(settings, options=options), "lagtest")
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._ready = threading.Event()

    def __enter__(self) -> "WorkerThread":
        self._thread.start()
        assert self._ready.wait(5)
        wait_for(lambda: len(self.worker.held) == 16, "the worker holds every partition")
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the worker did not stop"

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        try:
            await self.worker.run(self._stop)
        finally:
            await self.worker.projector.close()

    def sample(self, name: str, labels: dict[str, str]) -> float | None:
        return self.worker.metrics.registry.get_sample_value(name, labels)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def test_a_held_back_worker_reports_its_lag_and_returns_to_zero(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projector_stack, "WATCH_INTERVAL", 0.1)
    services: Services = build_services(settings)
    register_users(services, 1)
    with RelayThread(settings, "users"), WorkerThread(settings) as running:

        def lag() -> tuple[float | None, float | None]:
            return (
                running.sample("strata_projection_lag_events", DIRECTORY),
                running.sample("strata_projection_lag_seconds", DIRECTORY),
            )

        wait_for(lambda: lag() == (0, 0), "caught up with the first user")
        applied = store_max(services, "users")

        with psycopg.connect(str(settings.read_database_url)) as held:
            held.execute("LOCK TABLE rm_partition_checkpoints IN EXCLUSIVE MODE")
            before = time.time()
            register_users(services, 3)
            head = store_max(services, "users")
            wait_until_relayed(settings, "users", head)
            wait_for(lambda: lag()[0] == head - applied, "the lag counts the new events")
            wait_for(lambda: (lag()[1] or 0) > 0.3, "the lag in seconds grows")
            assert (lag()[1] or 0) <= time.time() - before
            feeds = [
                value
                for metric in running.worker.metrics.registry.collect()
                if metric.name == "strata_projection_feed_lag_events"
                for sample in metric.samples
                if sample.labels["context"] == "users"
                for value in [sample.value]
            ]
            assert sum(feeds) == head - applied  # one feed per partition held
            held.rollback()

        wait_for(lambda: lag() == (0, 0), "caught up again")
