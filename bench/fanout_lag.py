"""Fan-out lag: command commit -> visible in the Redis and PostgreSQL read models, in one run
with the raw JetStream tail lag it is judged against.

(a) raw floor: a JetStream stream of its own (namespaced), an open-loop publisher at `--rate`
    messages/s (`js.publish`, each awaiting its ack) and one durable pull consumer in the same
    process doing what the projector does (`fetch(256, timeout=1)`, ack each). Per message: the
    time from just before the publish to the consumer holding it ("tail lag").
(b) the stack: fresh databases `strata_bench_fan_users` / `_orders` (event stores) and
    `strata_bench_fan_read` (read models), Redis DB `--redis-db` (FLUSHDB first), streams under a
    unique `STRATA_STREAM_NAMESPACE`; `strata-write-api`, `strata-relay --context users`,
    `strata-relay --context orders` and `strata-projector` as subprocesses. An open-loop driver
    sends `--rate` commands/s for `--warmup` + `--seconds` s, a mix of customer journeys: register
    a user, then twice: create an order, add two lines, place it, pay it (1 + 2 x 5 = 11 commands,
    each appending one event). For every 2xx command of the measured window:

    - **commit time** = the moment its HTTP response arrives at the client (the write API answers
      after the commit; the response carries `position: "<context>:<n>"`);
    - **in JetStream**: a core NATS subscription on the context subjects sees the relay's
      message with `Strata-Position: n`;
    - **visible in Redis**: every Redis projection reading that context (user_profiles; or
      user_stats and top_spenders) has checkpoint >= n. Woken by `SUBSCRIBE rm:ckpt:db<n>`
      (the projector's last script call of each pipelined batch publishes), then the checkpoint
      keys are read (MGET) and the time after that read counts (the payload is not trusted);
    - **visible in PostgreSQL**: every SQL projection reading that context (users_directory; or
      orders and daily_sales) has checkpoint >= n, from `LISTEN rm_ckpt` on the read database
      (NOTIFY is delivered at commit; the payload carries the position).

    Lag = visibility time - commit time, floored at 0 (a read model can be ahead of the client's
    own response). Prints p50/p99/max per read-model store, per context, per stage, the ratio of
    each to the raw floor, and the CPU each process used. Targets: p50 <= 10 ms, p99 <= 50 ms.

`--profile` attaches `py-spy record --gil --nonblocking` to the projector and both relays for the
measured window (it costs them CPU, so read lags from unprofiled runs).

    .venv/bin/python bench/fanout_lag.py                          # 300 commands/s for 60 s
    .venv/bin/python bench/fanout_lag.py --rate 300 --seconds 10 --raw-seconds 5
    .venv/bin/python bench/fanout_lag.py --json > fanout.json

Exit 0 whether or not the targets are met; 2 if the stack did not start, more than 1 % of the
commands failed, or some commands never became visible.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import loadgen
import write_throughput as wt
from bench_auth import authorization, client_tokens, trusted_identity, unthrottled

from contexts.registered import REGISTRY
from projections.model import OpsProjection, SqlProjection
from projections.models import all_projections
from readmodels.keys import redis_channel_for_url

HOST = "127.0.0.1"
STARTED = time.time()
TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0
MAX_ERROR_RATIO = 0.01
DB_PREFIX = "strata_bench_fan"
CONTEXTS = REGISTRY.names
CHANNEL_PG = "rm_ckpt"

clock = time.perf_counter
WALL_OFFSET = time.time() - clock()
"""time.time() - perf_counter(): puts the events' wall-clock timestamps on the bench's clock."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def percentiles(values: list[float]) -> dict[str, Any]:
    """n, p50/p90/p99/max (ms) of values in seconds."""
    if not values:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))]

    return {
        "n": len(ordered),
        "p50_ms": ms(rank(50)),
        "p90_ms": ms(rank(90)),
        "p99_ms": ms(rank(99)),
        "max_ms": ms(ordered[-1]),
        "mean_ms": ms(sum(ordered) / len(ordered)),
    }


# --------------------------------------------------------------------------------------------
# the read models: which projections read which context, and where they live


@dataclass(frozen=True)
class ModelKey:
    store: str  # "redis" | "postgres"
    projection: str
    version: int
    context: str

    @property
    def redis_key(self) -> str:
        return f"rm:{{{self.projection}:v{self.version}}}:ckpt:{self.context}"

    @property
    def label(self) -> str:
        return f"{self.projection}:v{self.version}/{self.context}"


def read_models() -> list[ModelKey]:
    keys = []
    for projection in all_projections():
        if isinstance(projection, OpsProjection):
            store = "redis"
        elif isinstance(projection, SqlProjection):
            store = "postgres"
        else:
            continue
        for context in projection.contexts:
            keys.append(ModelKey(store, projection.name, projection.version, context))
    return keys


# --------------------------------------------------------------------------------------------
# the stack as subprocesses


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class StackConfig:
    pg: str  # base URL, no database
    redis_url: str
    nats_url: str
    namespace: str
    db_prefix: str = DB_PREFIX
    jwks_url: str = ""
    """The JWKS the services trust (bench_auth.trusted_identity)."""
    workers: int = 1
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="strata-fan-")))
    extra_env: dict[str, str] = field(default_factory=dict)

    def db(self, role: str) -> str:
        return f"{self.db_prefix}_{role}"

    def url(self, role: str) -> str:
        return f"{self.pg}/{self.db(role)}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            **{c.database_url_variable: self.url(c.name) for c in REGISTRY},
            STRATA_READ_DATABASE_URL=self.url("read"),
            STRATA_REDIS_URL=self.redis_url,
            STRATA_NATS_URL=self.nats_url,
            STRATA_STREAM_NAMESPACE=self.namespace,
            STRATA_LOG_LEVEL=env.get("STRATA_LOG_LEVEL", "warning"),
            STRATA_WEB_WORKERS=str(self.workers),
            **unthrottled(env),
        )
        if self.jwks_url:
            env["STRATA_JWKS_URL"] = self.jwks_url
        env.update(self.extra_env)
        return env


def recreate_databases(config: StackConfig, roles: Iterable[str]) -> None:
    for role in roles:
        wt.recreate_database(config.pg, config.db(role))


def drop_databases(config: StackConfig, roles: Iterable[str]) -> None:
    with psycopg.connect(wt.admin_url(config.pg), autocommit=True) as conn:
        for role in roles:
            conn.execute(f'DROP DATABASE IF EXISTS "{config.db(role)}" WITH (FORCE)')


def flush_redis(url: str) -> None:
    from redis import Redis  # noqa: PLC0415

    client = Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def spawn(name: str, command: list[str], env: dict[str, str], port: int, log_dir: Path) -> Service:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(  # its own session: we signal exactly this group at the end
            command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Service(name, process, port, log_path)


def start_write_api(config: StackConfig) -> Service:
    port = wt.free_port()
    env = config.env() | {"STRATA_HOST": HOST, "STRATA_PORT": str(port)}
    return spawn("write-api", [wt.venv_script("strata-write-api")], env, port, config.log_dir)


def start_relay(config: StackConfig, context: str) -> Service:
    port = wt.free_port()
    env = config.env() | {"STRATA_RELAY_HOST": HOST, "STRATA_RELAY_PORT": str(port)}
    command = [wt.venv_script("strata-relay"), "--context", context]
    return spawn(f"relay-{context}", command, env, port, config.log_dir)


def start_projector(config: StackConfig) -> Service:
    port = wt.free_port()
    env = config.env() | {"STRATA_PROJECTOR_HOST": HOST, "STRATA_PROJECTOR_PORT": str(port)}
    return spawn("projector", [wt.venv_script("strata-projector")], env, port, config.log_dir)


def wait_ready(service: Service, timeout: float = 60.0, path: str = "/readyz") -> None:
    request = loadgen.request_bytes("GET", path, f"{HOST}:{service.port}")
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited with {service.process.returncode}\n{service.log_tail()}"
            )
        try:
            response = loadgen.run(lambda: loadgen.fetch(HOST, service.port, request, 2.0))
        except (OSError, TimeoutError, EOFError):
            response = None
        if response is not None:
            if response.status == 200:
                return
            last = f"{response.status} {response.body[:300]!r}"
        time.sleep(0.1)
    raise RuntimeError(f"{service.name} was not ready within {timeout:g} s: {last}")


def stop_service(service: Service, timeout: float = 30.0) -> None:
    wt.stop_process_group(service.process, service.name, timeout)


async def delete_streams(nats_url: str, names: Iterable[str]) -> None:
    import nats  # noqa: PLC0415
    from nats.js.errors import NotFoundError  # noqa: PLC0415

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for name in names:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()


def stream_names(namespace: str) -> list[str]:
    return [f"{namespace.upper()}_ES_{context.upper()}" for context in CONTEXTS]


# --------------------------------------------------------------------------------------------
# CPU accounting per service (snapshots from bench/write_throughput.py's Window)


def cpu_by_service(window: wt.Window, services: list[Service]) -> dict[str, Any] | None:
    start, end = window.snapshot("start"), window.snapshot("end")
    if start is None or end is None:
        return None
    samplers = {child.pid for child in window.children.values()}
    owner: dict[int, str] = {}
    for service in services:
        for pid in wt._descendants(end.procs, service.process.pid):
            owner[pid] = service.name
    me = os.getpid()
    groups: Counter[str] = Counter()
    for pid, (comm, _, ticks) in end.procs.items():
        before = start.procs.get(pid)
        delta = ticks - (before[2] if before and before[0] == comm else 0)
        if delta <= 0 or pid in samplers:
            continue
        if pid == me:
            group = "bench client"
        elif pid in owner:
            group = owner[pid]
        elif comm == "py-spy":
            group = "py-spy"
        elif comm.startswith(("postgres", "postmaster")):
            group = "postgres"
        elif comm.startswith("nats-server"):
            group = "nats-server"
        elif comm.startswith("redis-server"):
            group = "redis-server"
        else:
            group = "other"
        groups[group] += delta
    wall = end.at - start.at
    total = end.total - start.total
    cores = {k: round(v / wt.CLK_TCK / wall, 3) for k, v in groups.most_common()}
    busy_cores = (end.busy - start.busy) / wt.CLK_TCK / wall
    # CPU of processes that exited during the window (e.g. other sessions' short-lived tests)
    cores["exited processes"] = round(max(0.0, busy_cores - sum(cores.values())), 3)
    return {
        "wall_s": round(wall, 3),
        "machine_busy_pct": round(100 * (end.busy - start.busy) / total, 1) if total else None,
        "cores": cores,
    }


class BusySampler:
    """Every second: machine-wide busy cores (/proc/stat) and the cores of the stack's own
    processes, so lag spikes can be set against other sessions' load on the shared machine."""

    def __init__(self, services: list[Service], interval: float = 1.0) -> None:
        self.services = services
        self.interval = interval
        self.samples: list[tuple[float, float, float]] = []  # (perf time, busy cores, stack)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="busy-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _pids(self) -> list[int]:
        procs = wt.cpu_snapshot().procs
        found: list[int] = []
        for service in self.services:
            found.extend(wt._descendants(procs, service.process.pid))
        return found

    @staticmethod
    def _read(pids: list[int]) -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = sum(fields[:8]) - fields[3] - fields[4]
        stack = 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    raw = f.read()
            except OSError:
                continue
            rest = raw[raw.rindex(")") + 2 :].split()
            stack += int(rest[11]) + int(rest[12])
        return busy, stack

    def _run(self) -> None:
        pids = self._pids()
        at, (busy, stack) = clock(), self._read(pids)
        while not self._stop.wait(self.interval):
            now, (busy2, stack2) = clock(), self._read(pids)
            wall = now - at
            self.samples.append(
                (now, (busy2 - busy) / wt.CLK_TCK / wall, (stack2 - stack) / wt.CLK_TCK / wall)
            )
            at, busy, stack = now, busy2, stack2

    def per_bucket(self, origin: float, width: float) -> dict[int, tuple[float, float]]:
        """Mean (machine busy cores, stack cores) per bucket of `width` seconds."""
        buckets: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for at, busy, stack in self.samples:
            buckets[int((at - origin) // width)].append((busy, stack))
        return {
            k: (
                round(sum(b for b, _ in v) / len(v), 2),
                round(sum(s for _, s in v) / len(v), 2),
            )
            for k, v in buckets.items()
        }


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


# --------------------------------------------------------------------------------------------
# (b) the load: customer journeys, open loop


ORDERS_PER_USER = 2
LINES_PER_ORDER = 2
JOURNEY = ["register"] + ["create", *["line"] * LINES_PER_ORDER, "place", "pay"] * ORDERS_PER_USER
COMMANDS_PER_JOURNEY = len(JOURNEY)  # 11
CONTEXT_OF = {"register": "users"} | dict.fromkeys(("create", "line", "place", "pay"), "orders")
CURRENCIES = ("EUR", "USD", "GBP")
IDLE_LIMIT = 3.0
"""Seconds a keep-alive connection may idle before it is dropped (uvicorn closes at 5 s)."""


@dataclass
class Journey:
    index: int
    run_id: str
    step: int = 0
    user_id: str | None = None
    order_id: str | None = None
    lines: int = 0

    @property
    def kind(self) -> str:
        return JOURNEY[self.step]

    def request(self, host: str, auth: str) -> bytes:
        """The next command; `auth` is its Authorization header line."""
        kind = self.kind
        if kind == "register":
            return loadgen.json_request(
                "POST",
                "/users",
                host,
                {
                    "name": f"Fan Out {self.index}",
                    "email": f"fan{self.index}-{self.run_id}@bench.example.com",
                },
                auth,
            )
        if kind == "create":
            currency = CURRENCIES[self.index % len(CURRENCIES)]
            body = {"user_id": self.user_id, "currency": currency}
            return loadgen.json_request("POST", "/orders", host, body, auth)
        if kind == "line":
            self.lines += 1
            body = {
                "sku": f"SKU-{self.lines}",
                "quantity": 1 + self.index % 3,
                "unit_price": "9.99",
            }
            path = f"/orders/{self.order_id}/lines"
            return loadgen.json_request("POST", path, host, body, auth)
        return loadgen.request_bytes("POST", f"/orders/{self.order_id}/{kind}", host, extra=auth)

    @property
    def resource(self) -> str:
        """The read API path showing this journey's last command."""
        return f"/orders/{self.order_id}" if self.order_id else f"/users/{self.user_id}"

    def answered(self, body: dict[str, Any]) -> None:
        if self.kind == "register":
            self.user_id = body["id"]
        elif self.kind == "create":
            self.order_id = body["id"]
            self.lines = 0
        self.step += 1

    @property
    def finished(self) -> bool:
        return self.step >= len(JOURNEY)


@dataclass
class Command:
    kind: str
    context: str
    scheduled: float
    answered: float = 0.0
    status: int = 0
    position: int = 0
    error: str | None = None
    resource: str = ""
    """The read API path that shows the command's effect (once answered)."""


class Driver:
    """Open loop: command i is sent at t0 + i/rate on an idle keep-alive connection (a new one
    if none is idle). Every 11th slot starts a journey; the others take the next step of a
    journey whose previous command was answered (a new journey if none is ready). Each journey
    is a client of its own, with one of `clients` tokens."""

    def __init__(self, port: int, rate: float, run_id: str, clients: int = 64) -> None:
        self.port = port
        self.auth = [authorization(token) for token in client_tokens(clients)]
        self.host = f"{HOST}:{port}"
        self.rate = rate
        self.run_id = run_id
        # keep-alive connections, last used at; the server closes them after 5 s idle
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.ready: list[Journey] = []
        self.journeys = 0
        self.commands: list[Command] = []
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def _next_journey(self, slot: int) -> Journey:
        if slot % COMMANDS_PER_JOURNEY != 0 and self.ready:
            return self.ready.pop(0)
        self.journeys += 1
        return Journey(self.journeys, self.run_id)

    async def run(self, seconds: float) -> None:
        t0 = clock()
        slot = 0
        while True:
            due = t0 + slot / self.rate
            if due - t0 >= seconds:
                break
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            journey = self._next_journey(slot)
            task = asyncio.create_task(self._send(journey, due))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            slot += 1
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        for _, writer, _ in self.idle:
            writer.close()

    async def _send(self, journey: Journey, due: float) -> None:
        kind = journey.kind
        command = Command(kind, CONTEXT_OF[kind], due)
        self.commands.append(command)
        request = journey.request(self.host, self.auth[journey.index % len(self.auth)])
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reader = writer = None
            while self.idle:
                reader, writer, used = self.idle.pop()  # the most recently used first
                if clock() - used < IDLE_LIMIT:
                    break
                writer.close()
                reader = writer = None
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, self.port)
                self.connections += 1
            writer.write(request)
            response, closing = await loadgen.read_response(reader)
            command.answered = clock()
            command.status = response.status
            if closing:
                writer.close()
            else:
                self.idle.append((reader, writer, command.answered))
        except (OSError, EOFError, asyncio.LimitOverrunError, loadgen.ProtocolError) as error:
            command.answered = clock()
            command.error = type(error).__name__
            return  # the journey is dropped
        finally:
            self.in_flight -= 1
        if 200 <= response.status < 300:
            body = json.loads(response.body)
            _, _, position = body["position"].partition(":")
            command.position = int(position)
            journey.answered(body)
            command.resource = journey.resource
            if not journey.finished:
                self.ready.append(journey)
        else:
            command.error = f"{response.status} {response.body[:200]!r}"


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


async def watch_subjects(nats_url: str, namespace: str, obs: Observations) -> Any:
    """Core NATS subscription on the context subjects: when the relay's message went through."""
    import nats  # noqa: PLC0415

    nc = await nats.connect(nats_url)
    prefix = len(namespace) + len(".es.")

    async def on_message(msg: Any) -> None:
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


# --------------------------------------------------------------------------------------------
# profiling


class Spy:
    """`py-spy record` on one process for a fixed duration (raw collapsed stacks)."""

    RATE = 100

    def __init__(self, service: Service, out: Path, seconds: float) -> None:
        py_spy = str(Path(sys.executable).parent / "py-spy")
        if not Path(py_spy).exists():
            sys.exit("fanout_lag: --profile needs py-spy in the virtualenv")
        self.path = out / f"{service.name}.pyspy.txt"
        self.seconds = seconds
        with open(out / f"{service.name}.pyspy.log", "wb") as log_file:
            self.process = subprocess.Popen(
                [
                    *(py_spy, "record", "--pid", str(service.process.pid), "--gil"),
                    *("--nonblocking", "--rate", str(self.RATE), "--format", "raw"),
                    *("--duration", str(max(1, round(seconds))), "--output", str(self.path)),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def finish(self) -> dict[str, Any] | None:
        try:
            self.process.wait(self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        profile = wt.summarize_profile(self.path, self.RATE, self.seconds, top=25)
        if profile is not None:
            profile.pop("areas", None)  # write-API specific
        return profile


# --------------------------------------------------------------------------------------------
# the run


@dataclass
class StackRun:
    commands: list[Command]
    obs: Observations
    measure_from: float
    measure_to: float
    cpu: dict[str, Any] | None
    driver: dict[str, Any]
    profiles: dict[str, Any]
    drained: bool
    busy: dict[int, tuple[float, float]]


async def drive(
    config: StackConfig,
    services: dict[str, Service],
    *,
    rate: float,
    seconds: float,
    warmup: float,
    profile: bool,
) -> StackRun:
    keys = read_models()
    obs = Observations()
    watchers = [
        asyncio.create_task(
            watch_redis(config.redis_url, [k for k in keys if k.store == "redis"], obs)
        ),
        asyncio.create_task(
            watch_postgres(config.url("read"), [k for k in keys if k.store == "postgres"], obs)
        ),
    ]
    subject_nc = await watch_subjects(config.nats_url, config.namespace, obs)
    await asyncio.sleep(0.5)  # subscriptions in place
    for task in watchers:
        if task.done():
            task.result()  # raises what went wrong
    driver = Driver(services["write-api"].port, rate, uuid.uuid4().hex[:8])
    sampler = BusySampler(list(services.values()))
    sampler.start()
    window = wt.Window()
    spies: dict[str, Spy] = {}
    measure_from = clock() + warmup
    measure_to = measure_from + seconds

    async def edges() -> None:
        await asyncio.sleep(max(0.0, measure_from - clock()))
        window("start")
        if profile:
            for name in ("projector", "relay-users", "relay-orders"):
                spies[name] = Spy(services[name], config.log_dir, seconds)
        await asyncio.sleep(max(0.0, measure_to - clock()))
        window("end")

    await asyncio.gather(driver.run(warmup + seconds), edges())

    # drain: wait until every read model has caught up with the last answered command
    last = Counter[str]()
    for command in driver.commands:
        if command.position:
            last[command.context] = max(last[command.context], command.position)
    deadline = clock() + 30
    drained = False
    while clock() < deadline:
        if all(obs.last(k) >= last[k.context] for k in keys):
            drained = True
            break
        await asyncio.sleep(0.05)
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    with contextlib.suppress(Exception):
        await subject_nc.close()
    sampler.stop()
    profiles = {name: spy.finish() for name, spy in spies.items()}
    cpu = cpu_by_service(window, list(services.values()))
    return StackRun(
        driver.commands,
        obs,
        measure_from,
        measure_to,
        cpu,
        {
            "journeys": driver.journeys,
            "connections": driver.connections,
            "max_in_flight": driver.max_in_flight,
        },
        profiles,
        drained,
        sampler.per_bucket(measure_from, 10.0),
    )


def analyse(run: StackRun, raw: dict[str, Any]) -> dict[str, Any]:
    keys = read_models()
    by_context: dict[str, dict[str, list[ModelKey]]] = defaultdict(lambda: defaultdict(list))
    for key in keys:
        by_context[key.context][key.store].append(key)
    measured = [c for c in run.commands if run.measure_from <= c.scheduled < run.measure_to]
    ok = [c for c in measured if c.position]
    failed = [c for c in measured if not c.position]
    lags: dict[str, list[float]] = defaultdict(list)
    per_context: dict[str, list[float]] = defaultdict(list)
    per_model: dict[str, list[float]] = defaultdict(list)
    ahead = Counter[str]()
    invisible = Counter[str]()
    series: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    since_decided: dict[str, list[float]] = defaultdict(list)
    rows = []
    for command in ok:
        published = run.obs.published[command.context].get(command.position)
        decided = run.obs.decided[command.context].get(command.position)
        if published is not None:
            lags["jetstream"].append(max(0.0, published - command.answered))
        else:
            invisible["jetstream"] += 1
        row = {
            "kind": command.kind,
            "context": command.context,
            "position": command.position,
            "scheduled": round(command.scheduled - run.measure_from, 6),
            "answered": round(command.answered - run.measure_from, 6),
            "decided": None if decided is None else round(decided - run.measure_from, 6),
            "jetstream": None if published is None else round(published - run.measure_from, 6),
        }
        if decided is not None:
            since_decided["response"].append(command.answered - decided)
            if published is not None:
                since_decided["jetstream"].append(published - decided)
        for store in ("redis", "postgres"):
            seen = []
            for key in by_context[command.context][store]:
                at = run.obs.reached_at(key, command.position)
                if at is None:
                    invisible[key.label] += 1
                    continue
                seen.append(at)
                per_model[key.label].append(max(0.0, at - command.answered))
            if len(seen) != len(by_context[command.context][store]) or not seen:
                invisible[store] += 1
                continue
            row[store] = round(max(seen) - run.measure_from, 6)
            if decided is not None:
                since_decided[store].append(max(seen) - decided)
            lag = max(seen) - command.answered
            if lag < 0:
                ahead[store] += 1
            lag = max(0.0, lag)
            lags[store].append(lag)
            per_context[f"{store}/{command.context}"].append(lag)
            series[store][int((command.answered - run.measure_from) // 10)].append(lag)
        rows.append(row)
    http = [c.answered - c.scheduled for c in ok]
    floor = raw["tail_lag"]

    def ratio(stats: dict[str, Any], q: str) -> float | None:
        if stats[q] is None or not floor[q]:
            return None
        return round(stats[q] / floor[q], 1)

    stores = {}
    for store in ("redis", "postgres", "jetstream"):
        stats = percentiles(lags[store])
        stats["ratio_to_raw_p50"] = ratio(stats, "p50_ms")
        stats["ratio_to_raw_p99"] = ratio(stats, "p99_ms")
        stores[store] = stats
    targets = {
        store: {
            "p50_met": stores[store]["p50_ms"] is not None
            and stores[store]["p50_ms"] <= TARGET_P50_MS,
            "p99_met": stores[store]["p99_ms"] is not None
            and stores[store]["p99_ms"] <= TARGET_P99_MS,
        }
        for store in ("redis", "postgres")
    }
    return {
        "commands": len(measured),
        "commands_ok": len(ok),
        "errors": Counter(str(c.error) for c in failed),
        "error_ratio": round(len(failed) / len(measured), 5) if measured else None,
        "mix": Counter(c.kind for c in ok),
        "rate_achieved": round(len(ok) / (run.measure_to - run.measure_from), 1),
        "http_latency": percentiles(http),
        "lag": stores,
        "since_event_timestamp": {k: percentiles(v) for k, v in since_decided.items()},
        "lag_per_context": {k: percentiles(v) for k, v in sorted(per_context.items())},
        "lag_per_model": {k: percentiles(v) for k, v in sorted(per_model.items())},
        "lag_p99_per_10s": {
            store: [ms(percentiles_value(v, 99)) for _, v in sorted(buckets.items())]
            for store, buckets in series.items()
        },
        "busy_per_10s": [
            {"machine_busy_cores": b, "stack_cores": st}
            for _, (b, st) in sorted(
                (k, v) for k, v in run.busy.items() if 0 <= k < len(series.get("redis", {}))
            )
        ],
        "visible_before_response": dict(ahead),
        "never_visible": dict(invisible),
        "drained": run.drained,
        "notifications": dict(run.obs.notifications),
        "redis_wakeups_without_move": run.obs.foreign_redis,
        "targets": targets,
        "rows": rows,
    }


def cpu_per_command(cpu: dict[str, Any], result: dict[str, Any]) -> str:
    """Milliseconds of CPU per answered command, whole stack and per strata service."""
    rate = result["rate_achieved"]
    if not rate:
        return "(no commands)"
    outside = ("bench client", "py-spy", "other", "exited processes")
    per = {k: 1000 * v / rate for k, v in cpu["cores"].items() if k not in outside}
    parts = ", ".join(f"{k} {v:.2f}" for k, v in per.items())
    return f"{sum(per.values()):.2f} ms for the stack ({parts})"


def percentiles_value(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))]


def code_digest() -> str:
    import hashlib  # noqa: PLC0415

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in ("write_api", "runtime", "eventlog", "domain", "projections"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def print_report(report: dict[str, Any]) -> None:
    raw, result = report["raw"], report["result"]
    print(
        f"\nfan-out lag, {report['rate']:g} commands/s open loop, {report['seconds']:g} s measured "
        f"after {report['warmup']:g} s warm-up; started {report['started']}, code "
        f"{report['code']}, namespace {report['namespace']}"
    )
    t = raw["tail_lag"]
    print(
        f"  (a) raw JetStream tail lag at {raw['rate']:g} msg/s ({raw['messages']} msgs, "
        f"fetch(256)): p50 {t['p50_ms']} / p99 {t['p99_ms']} / max {t['max_ms']} ms; "
        f"publish->ack p50 {raw['publish_to_ack']['p50_ms']} ms"
    )
    print(
        f"  (b) {result['commands_ok']} commands ok of {result['commands']} "
        f"({result['rate_achieved']}/s), errors {dict(result['errors']) or 'none'}; "
        f"mix {dict(result['mix'])}"
    )
    h = result["http_latency"]
    print(f"      HTTP scheduled->response p50 {h['p50_ms']} / p99 {h['p99_ms']} ms")
    print("      commit (HTTP response) -> ...          p50      p99      max   x raw p50 / p99")
    names = {
        "jetstream": "in JetStream (relay)",
        "redis": "visible in Redis read models",
        "postgres": "visible in PostgreSQL read models",
    }
    for store, label in names.items():
        s = result["lag"][store]
        if s["n"] == 0:
            print(f"      {label:<36} (none)")
            continue
        print(
            f"      {label:<36} {s['p50_ms']:>7.2f} {s['p99_ms']:>8.2f} {s['max_ms']:>8.2f}"
            f"   {s['ratio_to_raw_p50']} / {s['ratio_to_raw_p99']}"
        )
    decided = result["since_event_timestamp"]
    if decided:
        print("      from the event's own timestamp (write API clock at decision, before commit):")
        for name in ("response", "jetstream", "redis", "postgres"):
            s = decided.get(name)
            if s and s["n"]:
                print(
                    f"        -> {name:<31} {s['p50_ms']:>7.2f} {s['p99_ms']:>8.2f} "
                    f"{s['max_ms']:>8.2f}"
                )
    print("      per context and per read model (commit -> visible):")
    for name, s in result["lag_per_context"].items():
        print(f"        {name:<34} {s['p50_ms']:>7.2f} {s['p99_ms']:>8.2f} {s['max_ms']:>8.2f}")
    for name, s in result["lag_per_model"].items():
        print(f"        {name:<34} {s['p50_ms']:>7.2f} {s['p99_ms']:>8.2f} {s['max_ms']:>8.2f}")
    for store, values in result["lag_p99_per_10s"].items():
        print(f"      {store} p99 per 10 s: {' '.join(f'{v:.1f}' for v in values)} ms")
    if result["busy_per_10s"]:
        print(
            "      machine busy / strata services cores per 10 s: "
            + " ".join(
                f"{b['machine_busy_cores']:.2f}/{b['stack_cores']:.2f}"
                for b in result["busy_per_10s"]
            )
        )
    if result["visible_before_response"]:
        print(f"      visible before the response arrived: {result['visible_before_response']}")
    if result["never_visible"]:
        print(f"      NEVER VISIBLE: {result['never_visible']}")
    print(
        f"      notifications received: {result['notifications']}; Redis wake-ups with no "
        f"checkpoint move: {result['redis_wakeups_without_move']}"
    )
    cpu = report["cpu"]
    if cpu:
        cores = ", ".join(f"{k} {v:.2f}" for k, v in cpu["cores"].items())
        print(f"  CPU cores used in the window: {cores}; machine busy {cpu['machine_busy_pct']}%")
        print(f"  CPU per command: {cpu_per_command(cpu, result)}")
    verdicts = []
    for store, target in result["targets"].items():
        s = result["lag"][store]
        verdicts.append(
            f"{store}: p50 {s['p50_ms']} ms {'<=' if target['p50_met'] else '>'} "
            f"{TARGET_P50_MS:g}, p99 {s['p99_ms']} ms {'<=' if target['p99_met'] else '>'} "
            f"{TARGET_P99_MS:g}"
        )
    met = all(t["p50_met"] and t["p99_met"] for t in result["targets"].values())
    print(("TARGET MET: " if met else "TARGET MISSED: ") + "; ".join(verdicts))
    for name, profile in (report.get("profiles") or {}).items():
        if not profile:
            print(f"\n{name}: no profile samples")
            continue
        busy = ", ".join(f"{v}%" for v in profile["gil_busy_pct"].values())
        print(f"\n{name} profile: {profile['samples']} samples, GIL held {busy}; {profile['file']}")
        print("  self time by package:")
        for row in profile["self_by_package"][:10]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")
        print("  top cumulative:")
        for row in profile["cumulative"][:25]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")
        print("  top self:")
        for row in profile["self"][:12]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0, help="commands per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0, help="load before the window")
    parser.add_argument("--raw-seconds", type=float, default=15.0, help="raw tail-lag run")
    parser.add_argument("--workers", type=int, default=1, help="write API processes")
    parser.add_argument("--profile", action="store_true", help="py-spy on projector + relays")
    wt.add_stack_arguments(parser)
    parser.add_argument("--dump", type=Path, default=None, help="per-command times, JSON lines")
    args = parser.parse_args()
    if args.redis_db == 0:
        sys.exit("fanout_lag: use a Redis DB other than 0 (it is flushed)")

    namespace = f"benchfan{uuid.uuid4().hex[:8]}"
    out = args.out or Path(tempfile.mkdtemp(prefix="strata-fan-"))
    out.mkdir(parents=True, exist_ok=True)
    serving_keys = contextlib.ExitStack()  # the identity's JWKS, which the services trust
    config = StackConfig(
        jwks_url=serving_keys.enter_context(trusted_identity()),
        pg=args.pg.rstrip("/"),
        redis_url=f"{args.redis.rstrip('/')}/{args.redis_db}",
        nats_url=args.nats,
        namespace=namespace,
        workers=args.workers,
        log_dir=out,
        extra_env=dict(item.split("=", 1) for item in args.env),
    )

    log(f"(a) raw JetStream tail lag: {args.rate:g} msg/s for {args.raw_seconds:g} s ...")
    raw = loadgen.run(lambda: raw_tail_lag(args.nats, namespace, args.rate, args.raw_seconds))
    log(f"    p50 {raw['tail_lag']['p50_ms']} ms, p99 {raw['tail_lag']['p99_ms']} ms")

    log(f"(b) stack: databases {DB_PREFIX}_*, Redis {config.redis_url}, namespace {namespace}")
    roles = (*CONTEXTS, "read")
    recreate_databases(config, roles)
    flush_redis(config.redis_url)
    services: dict[str, Service] = {}
    code = 0
    try:
        services["write-api"] = start_write_api(config)
        wait_ready(services["write-api"])
        for context in CONTEXTS:
            services[f"relay-{context}"] = start_relay(config, context)
        services["projector"] = start_projector(config)
        for name in (*(f"relay-{context}" for context in CONTEXTS), "projector"):
            wait_ready(services[name])
        log(
            f"    stack ready; driving {args.rate:g} commands/s for {args.warmup:g} + "
            f"{args.seconds:g} s ..."
        )
        run = loadgen.run(
            lambda: drive(
                config,
                services,
                rate=args.rate,
                seconds=args.seconds,
                warmup=args.warmup,
                profile=args.profile,
            )
        )
    except RuntimeError as error:
        log(f"fanout_lag: FAILED: {error}")
        for service in services.values():
            log(f"--- {service.name} log (tail) ---\n{service.log_tail()}")
        code = 2
        run = None
    finally:
        for service in reversed(list(services.values())):
            stop_service(service)
        serving_keys.close()
        if not args.keep:
            loadgen.run(lambda: delete_streams(args.nats, stream_names(namespace)))
            drop_databases(config, roles)
            flush_redis(config.redis_url)
    if run is None:
        sys.exit(code)

    result = analyse(run, raw)
    rows = result.pop("rows")
    if args.dump:
        with open(args.dump, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        with open(args.dump.with_suffix(".checkpoints.jsonl"), "w") as f:
            for key, positions in run.obs.positions.items():
                for position, at in zip(positions, run.obs.times[key], strict=True):
                    f.write(
                        json.dumps(
                            {"model": key.label, "position": position, "at": at - run.measure_from}
                        )
                        + "\n"
                    )
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(STARTED)),
        "code": code_digest(),
        "namespace": namespace,
        "rate": args.rate,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "workers": args.workers,
        "env": args.env,
        "raw": raw,
        "result": result,
        "driver": run.driver,
        "cpu": run.cpu,
        "profiles": run.profiles,
        "logs": str(out),
    }
    if args.save:
        args.save.write_text(json.dumps(report, indent=2, default=str))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report)
        print(f"  logs: {out}")
    if (
        result["error_ratio"] is None
        or result["error_ratio"] > MAX_ERROR_RATIO
        or any(k in result["never_visible"] for k in ("redis", "postgres"))
    ):
        log(
            f"fanout_lag: FAILED: errors {dict(result['errors'])}, never visible "
            f"{result['never_visible']}"
        )
        for service in services.values():
            log(f"--- {service.name} log (tail) ---\n{service.log_tail()}")
        sys.exit(2)


if __name__ == "__main__":
    main()
