"""A service following its live settings file (hot reload), in every process that serves it.

A service may run several uvicorn workers, each a process of its own: each one follows the
file by itself (`following`, in its lifespan), so each one takes every change.
`install_live_settings(app, ...)` does it for a FastAPI app (`live_settings_of(app)`, the settings
in force; the log level, the rate limits when the app counts them, and the hooks it is given);
`live_settings_followed` for a process that is no app (the relay, the projector). The file is
watched with `watchfiles` (inotify where the kernel has it, polling elsewhere); a change is
applied within a fraction of a second. A document that is unreadable or holds a bad value is
logged and counted (`strata_live_settings_rejected_total`) and the settings stay as they were.

A service attaches its `LiveSettings` to its app (`attach_live_settings`, in its lifespan) so that
parts installed on the app find them (`live_settings_of`) and hook themselves: the rate limits do
(runtime/rate_limits.py).

Metrics, on the service's /metrics: `strata_live_settings_revision` (the bucket revision of the
document applied last, 0 before any), `strata_live_settings_rejected_total`, and
`strata_feature_flag{flag}` (1 on, 0 off, for each flag set).
"""

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache, partial
from pathlib import Path

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge
from watchfiles import Change, awatch

from runtime.live_settings import (
    LiveSettings,
    LiveSettingsFile,
    NotLive,
    adopt_live_checks,
    attach_live_settings,
)
from runtime.rate_limits import RATE_LIMIT_SETTINGS, rate_limits_of
from runtime.settings import CommonSettings

Follow = Callable[[FastAPI, LiveSettings], None]
"""Registers the hooks of a running app's parts (`live.on_change`)."""

log = logging.getLogger("strata.live_settings")


class LiveReloadMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.revision = Gauge(
            "strata_live_settings_revision",
            "Config bucket revision of the live settings this process applied last.",
            registry=registry,
        )
        self.rejected = Counter(
            "strata_live_settings_rejected",
            "Live settings documents this process refused (unreadable or a bad value).",
            registry=registry,
        )
        self.feature_flags = Gauge(
            "strata_feature_flag",
            "Feature flags of this process: 1 on, 0 off.",
            ("flag",),
            registry=registry,
        )

    def show_flags(self, settings: CommonSettings) -> None:
        self.feature_flags.clear()
        for flag, on in settings.feature_flags.items():
            self.feature_flags.labels(flag).set(int(on))


@cache
def live_reload_metrics(registry: CollectorRegistry) -> LiveReloadMetrics:
    """The metrics in `registry`, made once (apps of one process may share a registry)."""
    return LiveReloadMetrics(registry)


def set_log_level(settings: CommonSettings) -> None:
    """The hook of `log_level`: every logger of the process logs at the new level."""
    logging.getLogger().setLevel(settings.log_level.upper())


def load(file: LiveSettingsFile, live: LiveSettings, metrics: LiveReloadMetrics) -> None:
    """Apply the file's document (none: the start values), or log why not and keep the settings."""
    try:
        document = file.read()
        changed = live.apply(document.settings if document else {})
    except (NotLive, ValueError) as error:
        metrics.rejected.inc()
        log.error("live settings refused, keeping the current ones: %s", error)
        return
    revision = document.revision if document else 0
    metrics.revision.set(revision)
    if changed:
        log.info(
            "live settings applied: %s",
            ", ".join(sorted(changed)),
            extra={"revision": revision, "changed": sorted(changed), "pid": os.getpid()},
        )


@asynccontextmanager
async def following(
    path: Path, live: LiveSettings, metrics: LiveReloadMetrics
) -> AsyncIterator[None]:
    """Apply the live settings file now and after each change of it, for the block's duration."""
    file = LiveSettingsFile(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    live.on_change({"feature_flags"}, metrics.show_flags)
    metrics.show_flags(live.current)
    load(file, live, metrics)
    stop = asyncio.Event()
    watching = asyncio.create_task(_watch(file, live, metrics, stop))
    try:
        yield
    finally:
        stop.set()
        await watching


async def _watch(
    file: LiveSettingsFile, live: LiveSettings, metrics: LiveReloadMetrics, stop: asyncio.Event
) -> None:
    def ours(_change: Change, changed: str) -> bool:
        return Path(changed).name == file.path.name

    # `step` 50 ms: a change is reported once the folder has been quiet that long.
    async for _changes in awatch(
        file.path.parent, watch_filter=ours, stop_event=stop, recursive=False, step=50
    ):
        load(file, live, metrics)


@asynccontextmanager
async def live_settings_followed(
    settings: CommonSettings,
    registry: CollectorRegistry,
    *hooked: Callable[[LiveSettings], None],
) -> AsyncIterator[LiveSettings]:
    """The process's live settings, following `settings.live_settings_file` (when set) for the
    block's duration, the log level hooked, and each of `hooked` called to hook more before
    the file is first read; metrics in `registry`."""
    live = LiveSettings(settings)
    live.on_change({"log_level"}, set_log_level)
    for hook in hooked:
        hook(live)
    if settings.live_settings_file is None:
        yield live
        return
    async with following(settings.live_settings_file, live, live_reload_metrics(registry)):
        yield live


def follow_rate_limits(app: FastAPI, live: LiveSettings) -> None:
    """A `Follow`: the app's rate limits, if it counts any, take new rules at once."""
    if getattr(app.state, "rate_limits", None) is None:
        return
    limits = rate_limits_of(app)
    live.on_change(RATE_LIMIT_SETTINGS, limits.follow)


def install_live_settings(
    app: FastAPI,
    settings: CommonSettings,
    registry: Callable[[FastAPI], CollectorRegistry],
    *follows: Follow,
) -> None:
    """Follow the live settings while `app` runs (`live_settings_of(app)`): the log level, the rate
    limits (`follow_rate_limits`) and `follows`, each called once the app's other parts run.
    Install it last: its lifespan then starts after those of the app and its other routers.
    The metrics go to `registry(app)`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hooked = [
            partial(follow, app) for follow in (adopt_live_checks, follow_rate_limits, *follows)
        ]
        async with live_settings_followed(settings, registry(app), *hooked) as live:
            attach_live_settings(app, live)
            yield

    app.include_router(APIRouter(lifespan=lifespan))
