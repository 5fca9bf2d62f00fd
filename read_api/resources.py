"""The read side's resources for one app: stores, waiter, listeners, runner and metrics.

`open_read_side` builds them (the composition root of the read side) and closes them;
`attach_read_side` also puts them on `app.state.read_side`, where the read routes find them.
Use it inside the lifespan of any app that includes the read routes.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from contexts.registry import Registry
from read_api.cursors import CursorCodec
from read_api.listeners import RedisListener, listen_postgres
from read_api.metrics import ReadMetrics
from read_api.problems import STORE_ERRORS
from read_api.replica_gauges import ReplicaGauges
from read_api.saga_gauges import register_saga_gauges
from read_api.stores import ReadStores, build_read_stores, read_stores_mode
from read_api.stores.replica import ReplicaStatus
from read_api.waiting import CheckpointWatch
from readmodels.checkpoints import Positions
from runtime.auth.http import register_auth_mode
from runtime.http.deadlines import Runner
from runtime.process_metrics import show_process_metrics
from runtime.settings import CommonSettings, Mode

EMBEDDED_POLL_SECONDS = 0.005
"""Embedded mode: how often a waiting read re-reads the checkpoints (no notifications)."""
STACK_BACKSTOP_SECONDS = 1.0
"""Stack mode: the longest a waiting read trusts the listeners without re-reading."""
REPLICA_POLL_SECONDS = 0.01
"""Stack mode on a read replica: how often a waiting read re-reads the checkpoints. A replica
cannot LISTEN (it is in recovery) and the primary's NOTIFY comes before the replica has replayed
the commit, so the waits poll the replica; waiting reads share each read (`CheckpointWatch`)."""


@dataclass
class ReadSide:
    """What the read routes of one app use; `contexts` names its contexts, in registry order
    (the order of `X-Read-Position`)."""

    settings: CommonSettings
    contexts: tuple[str, ...]
    stores: ReadStores
    runner: Runner
    watch: CheckpointWatch
    metrics: ReadMetrics
    cursors: CursorCodec
    mode: Mode
    listeners: list[asyncio.Task[None]] = field(default_factory=list)
    redis_listener: RedisListener | None = None
    waiters: int = 0
    """Reads waiting now for a `position` (at most `read_max_waiting`)."""

    async def unreachable(self) -> dict[str, str]:
        """The read stores that do not answer, with the reason (empty when all are ready); a
        read replica lagging more than `read_replica_max_lag_seconds` counts as not answering."""
        failures = {}
        stores = self.stores
        for name, store in (("key-value", stores.key_value), ("relational", stores.relational)):
            try:
                await self.runner.run(store.ping)
            except Exception as error:  # noqa: BLE001 - reported, not raised
                failures[name] = str(error) or type(error).__name__
        limit = self.settings.read_replica_max_lag_seconds
        status = await self.replica_status() if "relational" not in failures else None
        if status is not None and status.lag_seconds > limit:
            failures["replica"] = f"{status.describe()} (the limit is {limit:g} s)"
        return failures

    async def replica_status(self) -> ReplicaStatus | None:
        """How far the read replica is behind; None without a replica or if it does not say."""
        probe = self.stores.replica
        if probe is None:
            return None
        try:
            return await self.runner.run(probe.status)
        except Exception:  # noqa: BLE001 - its pings report an unreachable replica
            return None


@asynccontextmanager
async def open_read_side(
    settings: CommonSettings, contexts: Registry, registry: CollectorRegistry | None = None
) -> AsyncIterator[ReadSide]:
    """Build the read side of `contexts`' read models; `registry` lets a host app collect the
    read metrics with its own."""
    mode = read_stores_mode(settings)
    models = contexts.read_models
    stores = build_read_stores(settings, models)
    runner = Runner(settings.worker_threads, settings.request_timeout, STORE_ERRORS)

    async def read_checkpoints() -> Positions:
        return await runner.run(lambda: stores.positions(models))

    watch = CheckpointWatch(read_checkpoints, backstop=_backstop(mode, stores))
    watch.bind(asyncio.get_running_loop())
    side = ReadSide(
        settings=settings,
        contexts=contexts.names,
        stores=stores,
        runner=runner,
        watch=watch,
        metrics=ReadMetrics(registry),
        cursors=CursorCodec(settings.read_cursor_secret.get_secret_value().encode()),
        mode=mode,
    )
    register_saga_gauges(side.metrics.registry, stores, models)
    if stores.replica is not None:
        side.metrics.registry.register(ReplicaGauges(stores.replica))
    if registry is None:  # a host's registry has the host's own
        show_process_metrics(side.metrics.registry)
        register_auth_mode(side.metrics.registry, settings.auth == "insecure")
    try:
        if mode == "stack":
            assert settings.redis_url
            assert settings.read_database_url
            side.redis_listener = RedisListener(settings.redis_url, watch)
            side.redis_listener.start()
            if stores.replica is None:  # a replica cannot LISTEN: its waits poll
                side.listeners.append(
                    asyncio.create_task(listen_postgres(settings.read_database_url, watch))
                )
        yield side
    finally:
        await _close(side)


def _backstop(mode: Mode, stores: ReadStores) -> float:
    if mode == "embedded":
        return EMBEDDED_POLL_SECONDS
    return STACK_BACKSTOP_SECONDS if stores.replica is None else REPLICA_POLL_SECONDS


async def _close(side: ReadSide) -> None:
    for task in side.listeners:
        task.cancel()
    for task in side.listeners:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if side.redis_listener is not None:
        await asyncio.to_thread(side.redis_listener.stop)
    side.runner.close()
    await asyncio.to_thread(side.stores.close)


@asynccontextmanager
async def attach_read_side(
    app: FastAPI,
    settings: CommonSettings,
    contexts: Registry,
    registry: CollectorRegistry | None = None,
) -> AsyncIterator[ReadSide]:
    async with open_read_side(settings, contexts, registry) as side:
        app.state.read_side = side
        yield side


def read_side(request: Request) -> ReadSide:
    return request.app.state.read_side  # type: ignore[no-any-return]
