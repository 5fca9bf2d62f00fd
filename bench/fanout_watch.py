"""Observers of the stack: when each read model's checkpoint reached each position (Redis
pub/sub, PostgreSQL LISTEN) and when the relay's message went through NATS."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
from collections import Counter, defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

import psycopg
from fanout_stack import CHANNEL_PG, WALL_OFFSET, ModelKey, clock

from readmodels.keys import redis_channel_for_url

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

# --------------------------------------------------------------------------------------------
# (b) observers: when did each checkpoint reach each position


class Observations:
    """Per (store, projection, context): increasing positions and when they were first seen."""

    def __init__(self) -> None:
        self.positions: dict[ModelKey, list[int]] = defaultdict(list)
        self.times: dict[ModelKey, list[float]] = defaultdict(list)
        # relay stage: (context) -> position -> time the message was seen on the subject
        self.published: dict[str, dict[int, float]] = defaultdict(dict)
        # (context) -> position -> the event's own timestamp (the write API's clock when the
        # command decided, before its commit), on the perf_counter scale
        self.decided: dict[str, dict[int, float]] = defaultdict(dict)
        self.notifications = Counter[str]()
        self.backends: set[int] = set()
        """The PostgreSQL backends of the observers (not the stack's)."""
        self.foreign_redis = 0

    def seen(self, key: ModelKey, position: int, at: float) -> None:
        positions = self.positions[key]
        if not positions or position > positions[-1]:
            positions.append(position)
            self.times[key].append(at)

    def last(self, key: ModelKey) -> int:
        positions = self.positions.get(key)
        return positions[-1] if positions else 0

    def reached_at(self, key: ModelKey, position: int) -> float | None:
        positions = self.positions.get(key, [])
        i = bisect.bisect_left(positions, position)
        return self.times[key][i] if i < len(positions) else None


async def watch_redis(url: str, keys: list[ModelKey], obs: Observations) -> None:
    import redis.asyncio as aredis  # noqa: PLC0415

    client = aredis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    names = [k.redis_key for k in keys]
    changed = asyncio.Event()

    async def read_loop() -> None:
        while True:
            await changed.wait()
            changed.clear()
            values = await client.mget(names)
            now = clock()
            moved = False
            for key, value in zip(keys, values, strict=True):
                position = int(value or 0)
                if position > obs.last(key):
                    obs.seen(key, position, now)
                    moved = True
            if not moved:
                obs.foreign_redis += 1

    reader = asyncio.create_task(read_loop())
    try:
        await pubsub.subscribe(redis_channel_for_url(url))
        changed.set()  # the initial state
        async for message in pubsub.listen():
            if message.get("type") == "message":
                obs.notifications["redis"] += 1
                changed.set()
    finally:
        reader.cancel()
        with contextlib.suppress(Exception):
            await pubsub.aclose()
            await client.aclose()


async def watch_postgres(url: str, keys: list[ModelKey], obs: Observations) -> None:
    by_name = {(k.projection, k.version, k.context): k for k in keys}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        obs.backends.add(conn.info.backend_pid)
        await conn.execute(f"LISTEN {CHANNEL_PG}")
        cursor = await conn.execute(
            "SELECT projection, version, context, position FROM rm_checkpoints"
        )
        now = clock()
        for projection, version, context, position in await cursor.fetchall():
            key = by_name.get((projection, version, context))
            if key is not None:
                obs.seen(key, int(position), now)
        async for notify in conn.notifies():
            now = clock()
            obs.notifications["postgres"] += 1
            payload = json.loads(notify.payload)
            key = by_name.get((payload["projection"], payload["version"], payload["context"]))
            if key is not None:
                obs.seen(key, int(payload["position"]), now)


async def watch_subjects(nats_url: str, namespace: str, obs: Observations) -> NatsClient:
    """Core NATS subscription on the context subjects: when the relay's message went through."""
    import nats  # noqa: PLC0415

    nc = await nats.connect(nats_url)
    prefix = len(namespace) + len(".es.")

    async def on_message(msg: Msg) -> None:
        now = clock()
        headers = msg.headers or {}
        position = headers.get("Strata-Position")
        if position is None:
            return
        context = msg.subject[prefix:].partition(".")[0]
        obs.published[context].setdefault(int(position), now)
        with contextlib.suppress(ValueError, KeyError, TypeError):
            stamp = datetime.fromisoformat(json.loads(msg.data)["timestamp"]).timestamp()
            obs.decided[context].setdefault(int(position), stamp - WALL_OFFSET)

    await nc.subscribe(f"{namespace}.es.>", cb=on_message)
    return nc
