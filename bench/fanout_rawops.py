"""The CPU of the raw operations one command needs, measured in the same run as the stack.

Per operation, at a modest open-loop rate, with nothing of strata involved:
- one INSERT + COMMIT of an event row (psycopg, its own database);
- one JetStream publish, awaiting its ack;
- one pull-consumer fetch of that message and its ack;
- the read-model writes an order event causes: one PostgreSQL transaction with two upserts and
  a checkpoint upsert, and one Redis pipeline of four commands (HINCRBY, ZINCRBY, SET of the
  checkpoint, PUBLISH).

CPU is read from /proc over the window (snapshots by a child process, as for the stack) for this
process, the two PostgreSQL backends serving it, nats-server and redis-server, divided by the
operations. The servers are shared: their CPU in an idle window just before is printed too."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from fanout_cpu import PG_OTHERS, cpu_by_service
from fanout_stack import clock
from proc_cpu import Window
from write_raw import event_payload

RAW_ROLE = "rawops"
"""The database role of `StackConfig.db`: `strata_bench_fan_rawops`."""
RAW_GROUPS = ("bench client", "postgres", "nats-server", "redis-server")
"""The cpu_by_service groups that the raw operations use."""
TABLES = """
CREATE TABLE events (
    id bigserial PRIMARY KEY, stream_id text NOT NULL, version int NOT NULL, type text NOT NULL,
    data jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE rm_orders (id text PRIMARY KEY, total numeric NOT NULL, lines int NOT NULL);
CREATE TABLE rm_daily (day date, currency text, total numeric NOT NULL, orders int NOT NULL,
    PRIMARY KEY (day, currency));
CREATE TABLE rm_checkpoints (projection text, context text, position bigint NOT NULL,
    PRIMARY KEY (projection, context));
"""
REDIS_KEYS = ("raw:user_stats:u1", "raw:top_spenders", "raw:ckpt:orders")
"""The keys the raw read-model writes touch (deleted at the end)."""
UPSERT_ORDER = """INSERT INTO rm_orders (id, total, lines) VALUES (%s, %s, 1)
ON CONFLICT (id) DO UPDATE SET total = rm_orders.total + excluded.total,
    lines = rm_orders.lines + 1"""
UPSERT_DAILY = """INSERT INTO rm_daily (day, currency, total, orders)
VALUES (current_date, %s, %s, 1)
ON CONFLICT (day, currency) DO UPDATE SET total = rm_daily.total + excluded.total,
    orders = rm_daily.orders + 1"""
UPSERT_CHECKPOINT = """INSERT INTO rm_checkpoints (projection, context, position)
VALUES ('orders', 'orders', %s)
ON CONFLICT (projection, context) DO UPDATE SET position = excluded.position"""


class RawOperations:
    """The connections and the stream the raw operations use; `one(i)` is one command's worth."""

    def __init__(self, store_url: str, redis_url: str, nats_url: str, namespace: str) -> None:
        self.store_url = store_url
        self.redis_url = redis_url
        self.nats_url = nats_url
        self.stream = f"{namespace.upper()}_RAWOPS"
        self.subject = f"{namespace}.rawops.x"
        self.payload = event_payload()
        self.exit = contextlib.AsyncExitStack()

    async def __aenter__(self) -> RawOperations:
        import nats  # noqa: PLC0415
        import redis.asyncio as aredis  # noqa: PLC0415
        from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig  # noqa: PLC0415

        self.store = await self._connect()
        self.read = await self._connect()
        async with self.store.transaction():
            await self.store.execute(TABLES)
        self.redis = aredis.Redis.from_url(self.redis_url)
        self.exit.push_async_callback(self.redis.aclose)
        self.exit.push_async_callback(self.redis.delete, *REDIS_KEYS)
        self.nc = await nats.connect(self.nats_url)
        self.exit.push_async_callback(self.nc.close)
        self.js = self.nc.jetstream()
        await self.js.add_stream(StreamConfig(name=self.stream, subjects=[self.subject]))
        self.exit.push_async_callback(self.js.delete_stream, self.stream)
        await self.js.add_consumer(
            self.stream, ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT)
        )
        self.consumer = await self.js.pull_subscribe_bind(durable="raw", stream=self.stream)
        return self

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(self.store_url)
        self.exit.push_async_callback(conn.close)
        return conn

    async def __aexit__(self, *exc: object) -> None:
        await self.exit.aclose()

    async def one(self, i: int) -> None:
        await self.store.execute(
            "INSERT INTO events (stream_id, version, type, data) VALUES (%s, 1, 'Placed', %s)",
            (f"order-{i}", self.payload),
        )
        await self.store.commit()
        await self.js.publish(self.subject, self.payload.encode(), headers={"Nats-Msg-Id": str(i)})
        for message in await self.consumer.fetch(1, timeout=5):
            await message.ack()
        order, currency = f"order-{i % 64}", ("EUR", "USD", "GBP")[i % 3]
        async with self.read.transaction():
            await self.read.execute(UPSERT_ORDER, (order, 9.99))
            await self.read.execute(UPSERT_DAILY, (currency, 9.99))
            await self.read.execute(UPSERT_CHECKPOINT, (i,))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(REDIS_KEYS[0], "orders", 1)
            pipe.zincrby(REDIS_KEYS[1], 9.99, f"user-{i % 64}")
            pipe.set(REDIS_KEYS[2], i)
            pipe.publish("raw:ckpt", i)
            await pipe.execute()


IDLE_SECONDS = 2.0
"""A window with none of our load just before the raw operations: the servers' CPU in it is
other sessions' (the servers are shared), printed beside the figures."""
WARM_OPERATIONS = 10


async def cpu_window(
    backends: set[int], work: Callable[[], Awaitable[int]]
) -> tuple[dict[str, Any] | None, int]:
    """CPU by group while `work` runs; returns it and the count `work` returns."""
    window = Window()
    window("start")
    done = await work()
    window("end")
    window.snapshot("end")  # before our connections close and their backends exit
    return cpu_by_service(window, [], backends), done


async def idle() -> int:
    await asyncio.sleep(IDLE_SECONDS)
    return 0


async def raw_operations_cpu(
    store_url: str, redis_url: str, nats_url: str, namespace: str, *, rate: float, seconds: float
) -> dict[str, Any]:
    """Run the raw operations at `rate`/s for `seconds`; CPU per operation from /proc."""
    async with RawOperations(store_url, redis_url, nats_url, namespace) as raw:
        for i in range(WARM_OPERATIONS):  # connections and server caches warm before the window
            await raw.one(-1 - i)
        backends = {raw.store.info.backend_pid, raw.read.info.backend_pid}
        idle_cpu, _ = await cpu_window(backends, idle)

        async def paced() -> int:
            started, done = clock(), 0
            while (due := started + done / rate) < started + seconds:
                await asyncio.sleep(max(0.0, due - clock()))
                await raw.one(done)
                done += 1
            return done

        cpu, done = await cpu_window(backends, paced)
    if cpu is None or idle_cpu is None:
        return {"operations": done, "rate": rate, "cpu": None}
    wall = cpu["wall_s"]
    per_op = {g: round(1000 * cpu["cores"].get(g, 0.0) * wall / done, 3) for g in RAW_GROUPS}
    return {
        "operations": done,
        "rate": rate,
        "achieved_rate": round(done / wall, 1),
        "cpu": cpu,
        "idle_cores": {g: idle_cpu["cores"].get(g, 0.0) for g in (*RAW_GROUPS[2:], PG_OTHERS)},
        "ms_per_operation": per_op,
        "total_ms": round(sum(per_op.values()), 3),
    }
