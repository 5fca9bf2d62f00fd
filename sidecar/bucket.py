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
"""

import json
import re
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError
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
