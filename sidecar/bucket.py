"""The configuration bucket: a NATS JetStream key-value bucket, one key per live setting.

- Name: `strata_config` (with `STRATA_STREAM_NAMESPACE=ns`: `ns_strata_config`), file storage,
  `HISTORY` revisions kept per key (`strata-config history`), replicated like the event streams
  (`STRATA_STREAM_REPLICAS`: 3 on a cluster, so it outlives the loss of a node).
- Keys: `<service>.<setting>`, for example `write-payments.breaker_failure_threshold`.
- Values: the setting's value as JSON (`3`, `2.5`, `"debug"`, `{"new-checkout": true}`); an
  object naming a member twice is not one (`decode` refuses it, as every JSON body of the
  system is refused, runtime/http/json_bodies.py). Deleting a key returns the service to the
  value it started with.

`open_bucket` creates the bucket when it is missing (the sidecar and the CLI both may be first).
A bucket deleted and created again is another stream, its revisions starting at 1 again:
`ConfigBucket` tells the sidecar which one it watches (the stream's creation time) and when it
changes (JetStream's stream advisories); a sidecar waits for a deleted bucket rather than create
it (sidecar/follower.py).
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from runtime.http.json_bodies import loads_unique
from runtime.settings import CommonSettings

BUCKET = "strata_config"
HISTORY = 10
"""Revisions kept per key (JetStream allows at most 64)."""
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def bucket_name(settings: CommonSettings) -> str:
    namespace = settings.stream_namespace
    return f"{namespace}_{BUCKET}" if namespace else BUCKET


async def open_bucket(js: JetStreamContext, settings: CommonSettings) -> KeyValue:
    """The configuration bucket, created when missing."""
    name = bucket_name(settings)
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        config = KeyValueConfig(
            bucket=name,
            description="Live settings of the strata services: <service>.<setting> = JSON.",
            history=HISTORY,
            storage=StorageType.FILE,
            replicas=settings.stream_replicas,
        )
        return await js.create_key_value(config)


class ConfigBucket:
    """The configuration bucket as a sidecar watches it, through a connection it gets once NATS
    answers. Its incarnation is its stream's creation time: another once the bucket was deleted
    and created again (its revisions then start at 1 again)."""

    def __init__(self, nc: Callable[[], NatsClient], settings: CommonSettings) -> None:
        self._nc = nc
        self._settings = settings
        self._name = bucket_name(settings)
        self._stream = f"KV_{self._name}"

    async def open(self, create: bool) -> tuple[KeyValue, datetime | None]:
        """The bucket, created when missing if `create` (else `BucketNotFoundError`), and its
        incarnation."""
        js = self._nc().jetstream()
        kv = await (open_bucket(js, self._settings) if create else js.key_value(self._name))
        return kv, await self.incarnation()

    async def incarnation(self) -> datetime | None:
        """The incarnation there is now; None while the bucket is gone."""
        try:
            return (await self._nc().jetstream().stream_info(self._stream)).created
        except NotFoundError:
            return None

    async def advisories(self, changed: Callable[[], None]) -> Subscription:
        """Call `changed` whenever JetStream reports the bucket's stream created, updated or
        deleted (the advisories may be missed: the sidecar checks now and then as well)."""

        async def advisory(_: Msg) -> None:
            changed()

        subject = f"$JS.EVENT.ADVISORY.STREAM.*.{self._stream}"
        return await self._nc().subscribe(subject, cb=advisory)


@dataclass(frozen=True)
class ConfigKey:
    service: str
    setting: str

    def __str__(self) -> str:
        return f"{self.service}.{self.setting}"

    @staticmethod
    def parse(key: str) -> "ConfigKey":
        service, _, setting = key.partition(".")
        return ConfigKey(service, setting)


def service_keys(service: str) -> str:
    """The subject filter of every key of the service."""
    return f"{service}.>"


async def stop_watching(watcher: KeyValue.KeyWatcher) -> None:
    """Unsubscribe the watcher's consumer and end its iteration."""
    await watcher.stop()  # type: ignore[no-untyped-call]


def encode(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def decode(raw: bytes | None) -> Any:
    """A value of the bucket; raises ValueError when it is not JSON, is nested too deeply to
    read (Python's `json` raises RecursionError), or names a member of an object twice
    (`DuplicateMember`)."""
    try:
        return loads_unique(raw or b"")
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
