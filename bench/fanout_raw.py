"""The raw floors the fan-out lag is judged against, measured in the same run."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fanout_stack import clock, percentiles

# --------------------------------------------------------------------------------------------
# (a) raw floor: JetStream publish -> a durable pull consumer holds the message


async def raw_tail_lag(
    nats_url: str, namespace: str, rate: float, seconds: float
) -> dict[str, Any]:
    import nats  # noqa: PLC0415
    from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig  # noqa: PLC0415

    name = f"{namespace.upper()}_RAWTAIL"
    subject = f"{namespace}.rawtail.x"
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name=name, subjects=[f"{namespace}.rawtail.>"], storage=StorageType.FILE)
    )
    await js.add_consumer(
        name,
        ConsumerConfig(
            durable_name="tail",
            ack_policy=AckPolicy.EXPLICIT,
            max_ack_pending=256,
            ack_wait=60,
        ),
    )
    subscription = await js.pull_subscribe_bind(durable="tail", stream=name)
    lags: list[float] = []
    acks: list[float] = []
    batches: list[int] = []
    sent = 0
    done = asyncio.Event()

    async def publish_one(i: int) -> None:
        started = clock()
        await js.publish(subject, b"%r" % started, headers={"Nats-Msg-Id": f"raw-{i}"})
        acks.append(clock() - started)

    async def publisher() -> None:
        nonlocal sent
        tasks = set()
        t0 = clock()
        while True:
            due = t0 + sent / rate
            if due - t0 >= seconds:
                break
            await asyncio.sleep(max(0.0, due - clock()))
            task = asyncio.create_task(publish_one(sent))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.gather(*tasks)
        done.set()

    async def consumer() -> None:
        while not (done.is_set() and len(lags) >= sent):
            try:
                messages = await subscription.fetch(256, timeout=1.0)
            except TimeoutError:
                continue
            now = clock()
            batches.append(len(messages))
            for msg in messages:
                lags.append(now - float(msg.data))
                await msg.ack()

    try:
        await asyncio.wait_for(asyncio.gather(publisher(), consumer()), seconds + 30)
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(name)
        await nc.close()
    return {
        "rate": rate,
        "seconds": seconds,
        "messages": len(lags),
        "tail_lag": percentiles(lags),
        "publish_to_ack": percentiles(acks),
        "mean_batch": round(sum(batches) / len(batches), 2) if batches else None,
    }
