"""NATS JetStream for tests, on the server of STRATA_TEST_NATS_URL (default the local one).

The server is shared: every test works in a namespace of its own (``STRATA_STREAM_NAMESPACE``),
so its streams and subjects never meet another test's or a running stack's, and it deletes its
streams when done (``deny_delete``/``deny_purge`` forbid deleting messages, not streams).
"""

import asyncio
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from eventlog.envelope import EventEnvelope
from eventlog.jetstream import ContextStream
from eventlog.relay_publish import relay_headers
from tests.support.postgres import services_required

DEFAULT_URL = "nats://127.0.0.1:4222"


def nats_url() -> str:
    return os.environ.get("STRATA_TEST_NATS_URL", DEFAULT_URL)


def require_nats() -> str:
    """The server URL, after checking it answers with JetStream; fail (CI) or skip if not."""
    url = nats_url()
    try:
        asyncio.run(probe(url))
    except (TimeoutError, OSError, nats.errors.Error) as error:
        message = f"NATS JetStream at {url} is unreachable: {error!r}"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    return url


async def probe(url: str) -> None:
    """Connect and ask for the JetStream account; raises if the server does not answer."""
    nc = await asyncio.wait_for(
        nats.connect(url, connect_timeout=2, max_reconnect_attempts=1, allow_reconnect=False), 3
    )
    try:
        await nc.jetstream(timeout=3).account_info()
    finally:
        await nc.close()


def new_namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes

    @property
    def position(self) -> int:
        return int(self.headers["Strata-Position"])


async def _connected(url: str) -> NatsClient:
    return await asyncio.wait_for(nats.connect(url, connect_timeout=2), 5)


async def _read(js: JetStreamContext, stream: str) -> list[StoredMessage]:
    try:
        state = (await js.stream_info(stream)).state
    except NotFoundError:
        return []
    messages = []
    for start in range(state.first_seq, state.last_seq + 1, 200):
        chunk = range(start, min(start + 200, state.last_seq + 1))
        raws = await asyncio.gather(*(js.get_msg(stream, seq=seq) for seq in chunk))
        messages += [
            StoredMessage(
                int(raw.seq or 0), str(raw.subject), dict(raw.headers or {}), raw.data or b""
            )
            for raw in raws
        ]
    return messages


def read_stream(url: str, stream: str) -> list[StoredMessage]:
    """Every message of a stream, in stream order (empty if there is no such stream)."""

    async def read() -> list[StoredMessage]:
        nc = await _connected(url)
        try:
            return await _read(nc.jetstream(), stream)
        finally:
            await nc.close()

    return asyncio.run(read())


def last_position(url: str, stream: str) -> int:
    """The Strata-Position of the stream's last message (0 if none or no stream)."""

    async def read() -> int:
        nc = await _connected(url)
        try:
            js = nc.jetstream()
            state = (await js.stream_info(stream)).state
            if not state.messages:
                return 0
            raw = await js.get_msg(stream, seq=state.last_seq)
            return int((raw.headers or {})["Strata-Position"])
        except NotFoundError:
            return 0
        finally:
            await nc.close()

    return asyncio.run(read())


def delete_streams(url: str, *streams: str) -> None:
    async def delete() -> None:
        nc = await _connected(url)
        try:
            js = nc.jetstream()
            for stream in streams:
                with contextlib.suppress(NotFoundError):
                    await js.delete_stream(stream)
        finally:
            await nc.close()

    asyncio.run(delete())


def with_js(url: str, work: Callable[[JetStreamContext], Awaitable[None]]) -> None:
    """Run `work` with a JetStream context of a connection of its own."""

    async def main() -> None:
        nc = await nats.connect(url, connect_timeout=2)
        try:
            await work(nc.jetstream())
        finally:
            await nc.close()

    asyncio.run(main())


async def create_stream(js: JetStreamContext, stream: ContextStream, **limits: Any) -> None:
    """A context's stream as the relay makes it, with optional limits (`max_msgs`, …)."""
    await js.add_stream(
        StreamConfig(
            name=stream.name,
            subjects=[stream.subjects],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            duplicate_window=300,
            **limits,
        )
    )


async def publish(
    js: JetStreamContext, stream: ContextStream, envelopes: list[EventEnvelope]
) -> None:
    """Publish envelopes as the relay does (subject and headers)."""
    for envelope in envelopes:
        await js.publish(
            stream.subject_of(envelope),
            envelope.to_json(),
            headers=relay_headers(envelope, stream.name, None),
        )
