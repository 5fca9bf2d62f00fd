"""Following one service's keys in the configuration bucket, and handing the good values on.

`ServiceConfig` keeps the last good value of each live setting: an update is validated against
the service's settings model and the live settings it takes
(`runtime.live_settings.validate_live`, sidecar/services.py); a bad one (not JSON, out of
bounds, a setting that is not live or does not exist) is logged, counted and not handed on, and
the setting keeps its last good value. A deleted key drops the setting, so the service returns to
the value it started with; a deleted key whose setting had no value handed on (never set, only
refused values, or deleted already) changes nothing and is counted as `ignored`.

`Follower` watches the keys (a nats-py KV watcher: an ordered push consumer that first delivers
the last value of each key, then every update) and writes the service's live settings file after
the initial values and after every accepted update.

After a NATS restart the watcher's consumer is gone with the server's memory, and nats-py only
notices when its idle heartbeats have been missed, many seconds later: updates meanwhile arrive
late. So the sidecar recreates the watcher as soon as the connection is back (`resync`, the
connection's reconnected callback). The new watcher delivers every key's last value again; entries
at or below the revision already seen for their key are skipped, so the resync hands on only
what changed during the outage.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import nats.errors
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from prometheus_client import CollectorRegistry, Counter, Gauge

from runtime.live_settings import LiveDocument, LiveSettingsFile, NotLive, validate_live
from sidecar.bucket import ConfigKey, decode, service_keys, stop_watching
from sidecar.services import ServiceSettings

log = logging.getLogger("strata.config_sidecar")

RETRY_SECONDS = 0.2
"""Pause before watching again when the bucket cannot be watched (NATS down or starting)."""


class SidecarMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.updates = Counter(
            "strata_config_updates",
            "Configuration updates by setting and outcome: applied (handed on), rejected, or"
            " ignored (the deletion of a setting that had no value handed on: nothing changed).",
            ("service", "setting", "outcome"),
            registry=registry,
        ).labels
        self.revision = Gauge(
            "strata_config_revision",
            "Bucket revision of the live settings last handed to the service.",
            ("service",),
            registry=registry,
        ).labels(service)
        self.watches = Counter(
            "strata_config_watches",
            "Watchers created on the bucket: the first, then one per resync after a reconnect.",
            ("service",),
            registry=registry,
        ).labels(service)


class ServiceConfig:
    """The last good value of each live setting of one service, from the bucket's entries."""

    def __init__(self, service: str, settings: ServiceSettings, metrics: SidecarMetrics) -> None:
        self.service = service
        self.values: dict[str, Any] = {}
        self.revision = 0
        self._settings = settings
        self._metrics = metrics
        self._seen: dict[str, int] = {}

    def take(self, entry: KeyValue.Entry) -> bool:
        """Take one entry of the bucket; whether it changed what the service is to be handed."""
        setting = ConfigKey.parse(entry.key).setting
        revision = entry.revision or 0
        if revision <= self._seen.get(setting, 0):
            return False  # delivered again by a resync
        self._seen[setting] = revision
        if entry.operation in (KV_DEL, KV_PURGE):
            if setting not in self.values:  # a refused key's deletion, say: nothing to drop
                self._metrics.updates(self.service, setting, "ignored").inc()
                return False
            del self.values[setting]
        else:
            try:
                value = decode(entry.value)
                validate_live(self._settings.model, {setting: value}, self._settings.live)
            except (NotLive, ValueError) as error:
                self._metrics.updates(self.service, setting, "rejected").inc()
                log.error(
                    "refused %s at revision %d, keeping the last good value: %s",
                    entry.key,
                    revision,
                    error,
                    extra={"key": entry.key, "revision": revision},
                )
                return False
            self.values[setting] = value
        self._metrics.updates(self.service, setting, "applied").inc()
        self.revision = max(self.revision, revision)
        return True

    def document(self) -> LiveDocument:
        return LiveDocument(self.service, self.revision, dict(self.values))


class Follower:
    """Watches one service's keys until cancelled, handing the good values to its file."""

    def __init__(
        self,
        bucket: Callable[[], Awaitable[KeyValue]],
        config: ServiceConfig,
        file: LiveSettingsFile,
        metrics: SidecarMetrics,
    ) -> None:
        self._bucket = bucket
        self._config = config
        self._file = file
        self._metrics = metrics
        self._reading: asyncio.Task[None] | None = None
        self._stale = False
        self.synced = asyncio.Event()
        """Set once the initial values have been handed on (the sidecar's readiness)."""

    def resync(self) -> None:
        """Watch anew (after a reconnect): the watcher in use may be dead without knowing."""
        self._stale = True
        if self._reading is not None:
            self._reading.cancel()

    async def run(self) -> None:
        while True:
            self._stale = False
            watcher = await self._watch()
            if self._stale:  # reconnected while the watch was being made: make it again
                await _stop(watcher)
                continue
            self._reading = asyncio.create_task(self._read(watcher))
            try:
                await asyncio.wait({self._reading})
            finally:
                self._reading.cancel()  # when this task is cancelled itself
                await _stop(watcher)
            if not self._reading.cancelled() and (error := self._reading.exception()):
                log.error("the bucket watcher failed; watching anew", exc_info=error)

    async def _watch(self) -> KeyValue.KeyWatcher:
        while True:
            try:
                kv = await self._bucket()
                watcher = await kv.watch(service_keys(self._config.service))
            except (nats.errors.Error, TimeoutError) as error:
                log.warning("cannot watch the configuration bucket yet: %r", error)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            self._metrics.watches.inc()
            return watcher

    async def _read(self, watcher: KeyValue.KeyWatcher) -> None:
        initial = True
        async for entry in watcher:
            if entry is None:  # the last of the initial values (or none): the file is complete
                initial = False
                self._hand_on()
                self.synced.set()
            elif self._config.take(entry) and not initial:
                self._hand_on()

    def _hand_on(self) -> None:
        document = self._config.document()
        self._file.write(document)
        self._metrics.revision.set(document.revision)
        log.info(
            "live settings of %s handed on at revision %d",
            document.service,
            document.revision,
            extra={"revision": document.revision, "settings": document.settings},
        )


async def _stop(watcher: KeyValue.KeyWatcher) -> None:
    """Unsubscribe the watcher's consumer, if the connection still can."""
    with suppress(nats.errors.Error, TimeoutError):
        await stop_watching(watcher)
