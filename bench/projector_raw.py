"""The raw floors of bench/projector_throughput.py: JetStream consumption with no work, (a) one
durable pull consumer per stream acking each message, (a') the projector's consumer layout."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fanout_stack import clock, percentiles

from contexts.settings import Settings
from eventlog.jetstream import context_stream


async def pull_consumer(
    js: Any, stream: str, name: str, *, ack_all: bool, max_ack_pending: int
) -> Any:
    """A durable pull consumer of the whole stream, bound: acks each message, or `all` (one ack
    covers every earlier message)."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy  # noqa: PLC0415

    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name=name,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.ALL if ack_all else AckPolicy.EXPLICIT,
            max_ack_pending=max_ack_pending,
            ack_wait=60,
        ),
    )
    return await js.pull_subscribe_bind(durable=name, stream=stream)


async def ack_each(subscription: Any, stream: str, count: int, fetch_times: list[float]) -> int:
    """Fetches 1000 at a time until `count` messages, acking each; records each fetch's time
    and returns how many messages came."""
    got = 0
    while got < count:
        before = clock()
        try:
            messages = await subscription.fetch(1000, timeout=5)
        except TimeoutError:
            raise RuntimeError(f"raw consumer of {stream} stalled at {got}") from None
        fetch_times.append(clock() - before)
        for msg in messages:
            await msg.ack()
        got += len(messages)
    return got


async def raw_consume(settings: Settings, expected: dict[str, int]) -> dict[str, Any]:
    from nats.aio.client import Client as NatsClient  # noqa: PLC0415

    nc = NatsClient()
    await nc.connect(servers=[settings.nats_url])
    js = nc.jetstream()
    per_stream = {}
    fetch_times: list[float] = []
    total_seconds = 0.0
    try:
        for context, count in expected.items():
            stream = context_stream(context, settings).name
            name = f"bench_raw_{context}"
            subscription = await pull_consumer(
                js, stream, name, ack_all=False, max_ack_pending=1000
            )
            started = clock()
            got = await ack_each(subscription, stream, count, fetch_times)
            seconds = clock() - started
            total_seconds += seconds
            per_stream[context] = {"messages": got, "seconds": round(seconds, 3)}
            await subscription.unsubscribe()
            await js.delete_consumer(stream, name)
    finally:
        await nc.close()
    events = sum(expected.values())
    return {
        "events": events,
        "seconds": round(total_seconds, 3),
        "rate": round(events / total_seconds, 1),
        "per_stream": per_stream,
        "fetch": percentiles(fetch_times),
    }


async def raw_fanout(settings: Settings, expected: dict[str, int], batch: int) -> dict[str, Any]:
    """The projector's consumer layout with no work: one durable pull consumer per context (its
    feed), all in one process, each `fetch(batch)` with `max_ack_pending=batch`, acks `all`
    (one ack per batch). What one process pays just to receive the events."""
    from nats.aio.client import Client as NatsClient  # noqa: PLC0415

    nc = NatsClient()
    await nc.connect(servers=[settings.nats_url])
    js = nc.jetstream()
    subscriptions = []
    for context in expected:
        stream = context_stream(context, settings).name
        name = f"bench_fan_{context}"
        sub = await pull_consumer(js, stream, name, ack_all=True, max_ack_pending=batch)
        subscriptions.append((context, stream, name, sub))

    async def consume(context: str, sub: Any) -> float:
        got = 0
        while got < expected[context]:
            try:
                messages = await sub.fetch(batch, timeout=5)
            except TimeoutError:
                raise RuntimeError(f"raw feed consumer {context} stalled at {got}") from None
            await messages[-1].ack()
            got += len(messages)
        return clock() - started

    started = clock()
    try:
        finished = await asyncio.gather(*(consume(c, sub) for c, _, _, sub in subscriptions))
        seconds = clock() - started
    finally:
        for _, stream, name, sub in subscriptions:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
                await js.delete_consumer(stream, name)
        await nc.close()
    events = sum(expected.values())
    return {
        "consumers": len(subscriptions),
        "batch": batch,
        "deliveries": events,
        "seconds": round(seconds, 3),
        "rate": round(events / seconds, 1),
        "finished": {c: round(t, 3) for (c, *_), t in zip(subscriptions, finished, strict=True)},
    }
