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

A deleted bucket (a nats-py watcher then only goes silent) is waited for, not created again
(`strata-config set` does): a bucket created again is another stream, whose revisions start at 1
again. The sidecar learns of it from the stream's advisories (or a check every `CHECK_SECONDS`, or
its creation time at a resync), is not ready meanwhile, watches the new bucket once it is there,
forgets the revisions seen in the old one, and keeps the last good values until the new bucket
gives the settings others.
"""

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from typing import Any

import nats.errors
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from prometheus_client import CollectorRegistry, Counter, Gauge

from runtime.live_settings import LiveDocument, LiveSettingsFile, NotLive, validate_live
from sidecar.bucket import ConfigBucket, ConfigKey, decode, service_keys, stop_watching
from sidecar.services import ServiceSettings

log = logging.getLogger("strata.config_sidecar")

RETRY_SECONDS = 0.2
"""First pause before watching again when the bucket cannot be watched (NATS down or starting,
the bucket gone and not yet created again); each next one doubles, up to `RETRY_MAX_SECONDS`."""
RETRY_MAX_SECONDS = 5.0
CHECK_SECONDS = 5.0
"""How often a watch checks that its bucket is still there and the same, should the stream
advisories that report it at once be missed."""


UNKNOWN_SETTING = "(unknown)"


class SidecarMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.updates = Counter(
            "strata_config_updates",
            "Configuration updates by setting and outcome: applied (handed on), rejected, or"
            " ignored (the deletion of a setting that had no value handed on: nothing changed)."
            " A key naming no setting of the service counts as setting `(unknown)`.",
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
        outcome = self._counter(setting)
        revision = entry.revision or 0
        if revision <= self._seen.get(setting, 0):
            return False  # delivered again by a resync
        self._seen[setting] = revision
        if entry.operation in (KV_DEL, KV_PURGE):
            if setting not in self.values:  # a refused key's deletion, say: nothing to drop
                outcome("ignored").inc()
                return False
            del self.values[setting]
        else:
            try:
                value = decode(entry.value)
                validate_live(self._settings.model, {setting: value}, self._settings.live)
            except (NotLive, ValueError) as error:
                outcome("rejected").inc()
                log.error(
                    "refused %s at revision %d, keeping the last good value: %s",
                    entry.key,
                    revision,
                    error,
                    extra={"key": entry.key, "revision": revision},
                )
                return False
            self.values[setting] = value
        outcome("applied").inc()
        self.revision = max(self.revision, revision)
        return True

    def _counter(self, setting: str) -> Callable[[str], Counter]:
        """The update counter of `setting` by outcome. Anyone who may write the bucket may name
        any key, so one naming no setting of the model is counted under one label, not its own
        (its name is in the log)."""
        label = setting if setting in self._settings.model.model_fields else UNKNOWN_SETTING
        return lambda outcome: self._metrics.updates(self.service, label, outcome)

    def new_bucket(self) -> None:
        """The bucket was deleted and created again: its revisions start at 1 again. The values
        are kept until the new bucket gives the settings others."""
        self._seen.clear()
        self.revision = 0

    def document(self) -> LiveDocument:
        return LiveDocument(self.service, self.revision, dict(self.values))


class Follower:
    """Watches one service's keys until cancelled, handing the good values to its file."""

    def __init__(
        self,
        bucket: ConfigBucket,
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
        self._incarnation: datetime | None = None
        self._gone = False
        self._changed = asyncio.Event()
        """Set at each advisory of the bucket's stream: created, updated, deleted."""
        self.synced = asyncio.Event()
        """Set once the initial values have been handed on (the sidecar's readiness)."""

    @property
    def not_ready(self) -> str | None:
        """Why the sidecar is not ready, if it is not."""
        if self._gone:
            return "the config bucket is gone; the service keeps its last good values"
        if not self.synced.is_set():
            return "the bucket's values are not handed on yet"
        return None

    def resync(self) -> None:
        """Watch anew (after a reconnect): the watcher in use may be dead without knowing."""
        self._stale = True
        if self._reading is not None:
            self._reading.cancel()

    async def run(self) -> None:
        with suppress(nats.errors.Error, TimeoutError):  # else the checks alone tell
            await self._bucket.advisories(self._changed.set)
        while True:
            self._stale = False
            watcher = await self._watch()
            if self._stale:  # reconnected while the watch was being made: make it again
                await _stop(watcher)
                continue
            self._reading = reading = asyncio.create_task(self._read(watcher))
            guarding = asyncio.create_task(self._guard())
            try:
                await asyncio.wait({reading, guarding}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                reading.cancel()  # when this task is cancelled itself, or the bucket is gone
                guarding.cancel()
                await _stop(watcher)
            for task in (reading, guarding):
                if task.done() and not task.cancelled() and (error := task.exception()):
                    log.error("the bucket watcher failed; watching anew", exc_info=error)

    async def _watch(self) -> KeyValue.KeyWatcher:
        pause = RETRY_SECONDS
        while True:
            self._changed.clear()
            try:
                # a bucket deleted is waited for, not created: one created at once after the
                # deletion's advisory may lose its messages (NATS 2.9 is still removing the
                # old one's files; measured here)
                kv, incarnation = await self._bucket.open(create=not self._gone)
                watcher = await kv.watch(service_keys(self._config.service))
            except BucketNotFoundError:
                pass  # gone: said once, by `_guard`
            except (nats.errors.Error, TimeoutError) as error:
                log.warning("cannot watch the configuration bucket yet: %r", error)
            else:
                self._take_incarnation(incarnation)
                self._metrics.watches.inc()
                return watcher
            with suppress(TimeoutError):  # or at once when the bucket is created
                await asyncio.wait_for(self._changed.wait(), pause)
            pause = min(2 * pause, RETRY_MAX_SECONDS)

    def _take_incarnation(self, incarnation: datetime | None) -> None:
        """A bucket deleted and created again: its revisions start at 1 again."""
        if self._incarnation is not None and incarnation != self._incarnation:
            self._config.new_bucket()
            if self._gone:  # said by `_guard`
                log.info("the configuration bucket is there again: taking its values")
            else:  # another already: replaced while NATS was away, say
                log.warning(
                    "the configuration bucket was deleted and created again: taking its values"
                    " from revision 1; the service keeps its last good values until the new"
                    " bucket gives the settings others"
                )
                self._gone = True  # until its values are handed on
        self._incarnation = incarnation

    async def _guard(self) -> None:
        """Return once the bucket watched is gone or another (a nats-py watcher of a deleted
        bucket only goes silent): at each of its stream's advisories, and every `CHECK_SECONDS`
        in case one was missed."""
        self._changed.set()  # a change before this watch began: check at once
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), CHECK_SECONDS)
            self._changed.clear()
            try:
                incarnation = await self._bucket.incarnation()
            except (nats.errors.Error, TimeoutError):
                continue  # NATS is away: its reconnection resyncs
            if incarnation is None:
                log.warning(
                    "the configuration bucket is gone: the service keeps its last good values;"
                    " waiting for the bucket to be created again (`strata config set` does)"
                )
                self._gone = True
                return
            if incarnation != self._incarnation:
                return

    async def _read(self, watcher: KeyValue.KeyWatcher) -> None:
        initial = True
        async for entry in watcher:
            if entry is None:  # the last of the initial values (or none): the file is complete
                initial = False
                self._hand_on()
                self._gone = False
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
