"""Projector throughput (and memory) against raw JetStream consumption, in one run.

Fill: N synthetic but valid envelopes (default 200,000) in fresh namespaced context streams
(`<NS>_ES_USERS`, `<NS>_ES_ORDERS`, created with the relay's own stream settings), published
directly through the relay's bounded publish window (256 in flight) with the relay's headers
(`Nats-Msg-Id`, chained `Nats-Expected-Last-Msg-Id`, `Strata-Position`, ...) and subjects. The mix
is what customer journeys write, with consistent aggregates: one user registered per two orders;
each order created, given 1-3 lines, placed (total = sum of the lines) and paid (amount = total);
~64 orders in progress at once, so their events interleave. Positions are consecutive per context.

(a) raw: one durable pull consumer per stream, `fetch(1000)`, ack each message, no work.
(a') the projector's layout with no work: one consumer per context, fetch(batch size), one
    ack per batch.
(b) projector: `strata-projector` as a subprocess on a fresh read database
    (`strata_bench_proj_read`) and a flushed Redis DB (`--redis-db`, default 9), timed from spawn
    until every projection's checkpoint (Redis keys and `rm_checkpoints`, polled every 20 ms)
    has reached the last position of its context. Also reported: the rate from the first
    checkpoint move (startup excluded), and when each projection finished.

Prints both rates (events/s, each event counted once) and the ratio b/a (target >= 0.5), plus the
CPU each process used during (b).

`--memory`: 1,000,000 events (unless `--events` says otherwise) and the projector's RSS (VmRSS of
/proc/<pid>/status) sampled each time another 50,000 events are applied by every projection;
reports min/max/last and whether the samples after warm-up (`--warmup-events`, default
200,000) stay within 10 % (target: flat within 10 %).

    .venv/bin/python bench/projector_throughput.py                     # 200k events
    .venv/bin/python bench/projector_throughput.py --events 50000      # a short check
    .venv/bin/python bench/projector_throughput.py --memory            # 1M events, RSS
    .venv/bin/python bench/projector_throughput.py --profile           # py-spy on the projector

Exit 0 whether or not a target is met; 2 if the projector did not start or did not finish within
`--timeout` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import fanout_lag as fl
import fanout_stack as fs
import loadgen
import write_throughput as wt

from contexts.settings import Settings
from eventlog.envelope import EventEnvelope
from eventlog.jetstream import PublishWindow, context_stream, ensure_stream
from eventlog.relay_publish import relay_headers

STARTED = time.time()
TARGET_RATIO = 0.5
DB_PREFIX = "strata_bench_proj"
"""Databases of its own: fanout_lag.py's may be in use at the same time."""
MEMORY_TOLERANCE = 0.10
RSS_EVERY = 50_000
POLL = 0.02
ACTIVE_ORDERS = 64
CURRENCIES = ("EUR", "USD", "GBP")
PRICES = tuple(Decimal(p) for p in ("4.99", "9.99", "12.50", "19.90", "49.00"))

clock = time.perf_counter
log = fl.log


# --------------------------------------------------------------------------------------------
# synthetic envelopes


@dataclass
class _Order:
    id: UUID
    user_id: UUID
    currency: str
    lines: int
    version: int = 0
    total: Decimal = Decimal("0.00")


def synthetic_events(count: int, seed: int = 7) -> Iterator[EventEnvelope]:
    """`count` envelopes, as the relay publishes them, in store order per context."""
    rng = random.Random(seed)
    positions = Counter[str]()
    users: list[UUID] = []
    active: list[_Order] = []
    started = 0
    clock_at = datetime(2026, 11, 1, tzinfo=UTC)
    tick = timedelta(milliseconds=3)
    made = 0

    def new_id() -> UUID:
        return UUID(int=rng.getrandbits(128), version=4)

    def envelope(
        context: str, kind: str, aggregate: UUID, version: int, event: str, data: dict[str, Any]
    ) -> EventEnvelope:
        nonlocal clock_at, made
        positions[context] += 1
        clock_at += tick
        made += 1
        return EventEnvelope(
            position=positions[context],
            context=context,
            aggregate_type=kind,
            aggregate_id=aggregate,
            aggregate_version=version,
            event_type=event,
            schema_version=1,
            timestamp=clock_at,
            data=data,
            correlation_id=str(new_id()),
            causation_id=None,
        )

    while made < count:
        while len(active) < ACTIVE_ORDERS and made < count:
            if started % 2 == 0 or not users:  # one registration per two orders
                user = new_id()
                users.append(user)
                n = len(users)
                yield envelope(
                    "users",
                    "UserProfile",
                    user,
                    1,
                    "Registered",
                    {"name": f"Synthetic User {n}", "email": f"user{n}@bench.example.com"},
                )
            else:
                user = rng.choice(users)
            started += 1
            order = _Order(new_id(), user, CURRENCIES[started % 3], rng.randint(1, 3))
            active.append(order)
        if made >= count:
            return
        order = rng.choice(active)
        order.version += 1
        v = order.version
        if v == 1:
            event, data = "Created", {"user_id": str(order.user_id), "currency": order.currency}
        elif v <= 1 + order.lines:
            price = rng.choice(PRICES)
            quantity = rng.randint(1, 5)
            order.total += price * quantity
            event = "LineAdded"
            data = {"sku": f"SKU-{v - 1}", "quantity": quantity, "unit_price": str(price)}
        elif v == 2 + order.lines:
            event, data = "Placed", {"total": str(order.total)}
        else:
            event, data = "Paid", {"amount": str(order.total)}
            active.remove(order)
        yield envelope("orders", "Order", order.id, v, event, data)


@dataclass
class Expected:
    """What the read models must hold once every event is applied."""

    users: int = 0
    orders: int = 0
    paid_cents: Counter[str] = field(default_factory=Counter)  # per currency
    currency_of: dict[UUID, str] = field(default_factory=dict)

    def see(self, envelope: EventEnvelope) -> None:
        if envelope.event_type == "Registered":
            self.users += 1
        elif envelope.event_type == "Created":
            self.orders += 1
            self.currency_of[envelope.aggregate_id] = envelope.data["currency"]
        elif envelope.event_type == "Paid":
            currency = self.currency_of.pop(envelope.aggregate_id)
            self.paid_cents[currency] += int(Decimal(envelope.data["amount"]) * 100)


@dataclass
class Fill:
    events: int
    per_context: dict[str, int]
    seconds: float
    bytes: int
    expected: Expected

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def fill_streams(settings: Settings, count: int) -> Fill:
    from nats.aio.client import Client as NatsClient  # noqa: PLC0415

    nc = NatsClient()
    await nc.connect(servers=[settings.nats_url])
    js = nc.jetstream()
    for context in fl.CONTEXTS:
        await ensure_stream(js, context, settings)
    streams = {context: context_stream(context, settings) for context in fl.CONTEXTS}
    window = PublishWindow(nc, max_in_flight=256, ack_timeout=30)
    await window.open()
    previous: dict[str, str | None] = dict.fromkeys(fl.CONTEXTS)
    per_context = Counter[str]()
    expected = Expected()
    size = 0
    started = clock()
    try:
        for envelope in synthetic_events(count):
            stream = streams[envelope.context]
            headers = relay_headers(envelope, stream.name, previous[envelope.context])
            payload = envelope.to_json()
            size += len(payload)
            await window.publish(stream.subject_of(envelope), payload, headers)
            previous[envelope.context] = envelope.message_id
            per_context[envelope.context] += 1
            expected.see(envelope)
        acks = await window.flush()
        duplicates = sum(1 for ack in acks if ack.duplicate)
        if duplicates:
            raise RuntimeError(f"{duplicates} publishes were acknowledged as duplicates")
        seconds = clock() - started
    finally:
        await window.close()
        await nc.close()
    return Fill(sum(per_context.values()), dict(per_context), seconds, size, expected)


# --------------------------------------------------------------------------------------------
# (a) raw: durable pull, fetch(1000), ack each


async def raw_consume(settings: Settings, expected: dict[str, int]) -> dict[str, Any]:
    from nats.aio.client import Client as NatsClient  # noqa: PLC0415
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy  # noqa: PLC0415

    nc = NatsClient()
    await nc.connect(servers=[settings.nats_url])
    js = nc.jetstream()
    per_stream = {}
    fetch_times: list[float] = []
    total_seconds = 0.0
    try:
        for context, count in expected.items():
            stream = context_stream(context, settings)
            name = f"bench_raw_{context}"
            await js.add_consumer(
                stream.name,
                ConsumerConfig(
                    durable_name=name,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=AckPolicy.EXPLICIT,
                    max_ack_pending=1000,
                    ack_wait=60,
                ),
            )
            subscription = await js.pull_subscribe_bind(durable=name, stream=stream.name)
            got = 0
            started = clock()
            while got < count:
                before = clock()
                try:
                    messages = await subscription.fetch(1000, timeout=5)
                except TimeoutError:
                    raise RuntimeError(f"raw consumer of {stream.name} stalled at {got}") from None
                fetch_times.append(clock() - before)
                for msg in messages:
                    await msg.ack()
                got += len(messages)
            seconds = clock() - started
            total_seconds += seconds
            per_stream[context] = {"messages": got, "seconds": round(seconds, 3)}
            await subscription.unsubscribe()
            await js.delete_consumer(stream.name, name)
    finally:
        await nc.close()
    events = sum(expected.values())
    return {
        "events": events,
        "seconds": round(total_seconds, 3),
        "rate": round(events / total_seconds, 1),
        "per_stream": per_stream,
        "fetch": fl.percentiles(fetch_times),
    }


async def raw_fanout(settings: Settings, expected: dict[str, int], batch: int) -> dict[str, Any]:
    """The projector's consumer layout with no work: one durable pull consumer per context (its
    feed), all in one process, each `fetch(batch)` with `max_ack_pending=batch`, acks `all`
    (one ack per batch). What one process pays just to receive the events."""
    from nats.aio.client import Client as NatsClient  # noqa: PLC0415
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy  # noqa: PLC0415

    nc = NatsClient()
    await nc.connect(servers=[settings.nats_url])
    js = nc.jetstream()
    subscriptions = []
    for context in expected:
        stream = context_stream(context, settings)
        name = f"bench_fan_{context}"
        await js.add_consumer(
            stream.name,
            ConsumerConfig(
                durable_name=name,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.ALL,
                max_ack_pending=batch,
                ack_wait=60,
            ),
        )
        sub = await js.pull_subscribe_bind(durable=name, stream=stream.name)
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
                await js.delete_consumer(stream.name, name)
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


# --------------------------------------------------------------------------------------------
# (b) the projector


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class ProjectorRun:
    spawned: float
    first_move: float | None = None
    done: float | None = None
    finished: dict[str, float] = field(default_factory=dict)  # label -> seconds after spawn
    rss: list[dict[str, Any]] = field(default_factory=list)  # every RSS_EVERY events
    rss_series: list[tuple[float, int]] = field(default_factory=list)  # (s, KiB) every 1 s
    progress_series: list[tuple[float, int]] = field(default_factory=list)
    cpu: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None


def read_checkpoints(
    redis_client: Any, pg: psycopg.Connection[Any], keys: list[fl.ModelKey]
) -> dict[fl.ModelKey, int]:
    found: dict[fl.ModelKey, int] = {}
    redis_keys = [k for k in keys if k.store == "redis"]
    for key, value in zip(
        redis_keys, redis_client.mget([k.redis_key for k in redis_keys]), strict=True
    ):
        found[key] = int(value or 0)
    try:
        rows = pg.execute(
            "SELECT projection, version, context, position FROM rm_checkpoints"
        ).fetchall()
    except psycopg.errors.UndefinedTable:
        rows = []
    by_name = {(r[0], r[1], r[2]): int(r[3]) for r in rows}
    for key in keys:
        if key.store == "postgres":
            found[key] = by_name.get((key.projection, key.version, key.context), 0)
    return found


def filled_models(per_context: dict[str, int]) -> list[fl.ModelKey]:
    """The read models of the contexts the fill wrote to (the others have nothing to do)."""
    return [key for key in fl.read_models() if key.context in per_context]


def run_projector(
    config: fl.StackConfig,
    last: dict[str, int],
    *,
    timeout: float,
    profile_seconds: float,
    rss_every: int = RSS_EVERY,
) -> tuple[ProjectorRun, fl.Service]:
    from redis import Redis  # noqa: PLC0415

    keys = filled_models(last)
    total = sum(last.values())
    redis_client = Redis.from_url(config.redis_url)
    pg = psycopg.connect(config.url("read"), autocommit=True)
    window = wt.Window()
    window("start")
    spawned = clock()
    service = fl.start_projector(config)
    run = ProjectorRun(spawned)
    spy: fl.Spy | None = None
    next_rss = rss_every
    next_second = 0.0
    try:
        while True:
            now = clock()
            if now - spawned > timeout:
                raise RuntimeError(f"the projector did not finish within {timeout:g} s")
            if service.process.poll() is not None:
                raise RuntimeError(f"the projector exited with {service.process.returncode}")
            if spy is None and profile_seconds and now - spawned > 5:
                spy = fl.Spy(service, config.log_dir, profile_seconds)
            positions = read_checkpoints(redis_client, pg, keys)
            at = clock() - spawned
            progress = sum(
                min(p for k, p in positions.items() if k.context == context) for context in last
            )
            if run.first_move is None and any(positions.values()):
                run.first_move = at
            for key, position in positions.items():
                if key.label not in run.finished and position >= last[key.context]:
                    run.finished[key.label] = round(at, 3)
            while progress >= next_rss and next_rss <= total:
                run.rss.append(
                    {
                        "events": next_rss,
                        "seconds": round(at, 2),
                        "rss_kib": rss_kib(service.process.pid),
                    }
                )
                next_rss += rss_every
            if at >= next_second:
                kib = rss_kib(service.process.pid)
                if kib is not None:
                    run.rss_series.append((round(at, 2), kib))
                run.progress_series.append((round(at, 2), progress))
                next_second += 1.0
            if all(positions[k] >= last[k.context] for k in keys):
                run.done = at
                break
            time.sleep(POLL)
        window("end")
        run.cpu = fl.cpu_by_service(window, [service])
        if spy is not None:
            run.profile = spy.finish()
    finally:
        redis_client.close()
        pg.close()
    return run, service


def verify(config: fl.StackConfig, expected: Expected) -> dict[str, Any]:
    """Spot checks that the events were applied (not parked): row counts and money totals in
    PostgreSQL, and the top_spenders scores in Redis, against what the fill wrote."""
    from redis import Redis  # noqa: PLC0415

    found: dict[str, Any] = {}
    with psycopg.connect(config.url("read"), autocommit=True) as conn:

        def one(sql: str) -> Any:
            row = conn.execute(sql).fetchone()
            return row[0] if row else None

        found["dead_letters"] = one("SELECT count(*) FROM dead_letters")
        found["users_directory"] = one("SELECT count(*) FROM users_directory")
        found["orders"] = one("SELECT count(*) FROM orders")
        found["orders_paid"] = one("SELECT count(*) FROM orders WHERE status = 'paid'")
        rows = conn.execute(
            "SELECT currency, sum(paid_cents) FROM daily_sales GROUP BY currency"
        ).fetchall()
        found["daily_sales_cents"] = {c: int(v) for c, v in rows}
    client = Redis.from_url(config.redis_url)
    try:
        found["top_spenders_cents"] = {
            currency: int(
                sum(
                    score
                    for _, score in client.zrange(
                        f"rm:{{top_spenders:v1}}:top:{currency}", 0, -1, withscores=True
                    )
                )
            )
            for currency in CURRENCIES
        }
    finally:
        client.close()
    want_cents = {c: v for c, v in expected.paid_cents.items() if v}
    problems = []
    if found["dead_letters"]:
        problems.append(f"{found['dead_letters']} dead letters")
    if found["users_directory"] != expected.users:
        problems.append(f"users_directory {found['users_directory']} != {expected.users}")
    if found["orders"] != expected.orders:
        problems.append(f"orders {found['orders']} != {expected.orders}")
    if found["daily_sales_cents"] != want_cents:
        problems.append(f"daily_sales {found['daily_sales_cents']} != {want_cents}")
    if {c: v for c, v in found["top_spenders_cents"].items() if v} != want_cents:
        problems.append(f"top_spenders {found['top_spenders_cents']} != {want_cents}")
    found["ok"] = not problems
    found["problems"] = problems
    return found


# --------------------------------------------------------------------------------------------
# report


def memory_verdict(samples: list[dict[str, Any]], warmup_events: int) -> dict[str, Any]:
    values = [s["rss_kib"] for s in samples if s["rss_kib"] is not None]
    after = [
        s["rss_kib"] for s in samples if s["rss_kib"] is not None and s["events"] >= warmup_events
    ]
    if not values:
        return {"samples": 0}
    verdict: dict[str, Any] = {
        "samples": len(values),
        "min_mib": round(min(values) / 1024, 1),
        "max_mib": round(max(values) / 1024, 1),
        "last_mib": round(values[-1] / 1024, 1),
        "warmup_events": warmup_events,
    }
    if after:
        spread = (max(after) - min(after)) / min(after)
        verdict |= {
            "after_warmup_samples": len(after),
            "after_warmup_min_mib": round(min(after) / 1024, 1),
            "after_warmup_max_mib": round(max(after) / 1024, 1),
            "after_warmup_spread_pct": round(100 * spread, 1),
            "flat": spread <= MEMORY_TOLERANCE,
        }
    return verdict


def print_report(report: dict[str, Any]) -> None:
    fill, raw, proj = report["fill"], report["raw"], report["projector"]
    print(
        f"\nprojector throughput, {fill['events']:,} events "
        f"({', '.join(f'{k} {v:,}' for k, v in fill['per_context'].items())}); started "
        f"{report['started']}, code {report['code']}, namespace {report['namespace']}, "
        f"batch size {report['batch_size']}"
    )
    print(
        f"  fill: published in {fill['seconds']:.1f} s ({fill['rate']:,.0f} msg/s, 256 in flight, "
        f"mean payload {fill['mean_payload_bytes']} B)"
    )
    print(
        f"  (a) raw durable pull, fetch(1000), ack each: {raw['rate']:,.0f} ev/s "
        f"({raw['seconds']:.1f} s; fetch p50 {raw['fetch']['p50_ms']} ms)"
    )
    fan = report["raw_fanout"]
    print(
        f"  (a') raw, the projector's layout ({fan['consumers']} consumers, "
        f"{fan['deliveries']:,} deliveries, fetch({fan['batch']}), one ack per batch, no work): "
        f"{fan['rate']:,.0f} ev/s ({fan['seconds']:.1f} s)"
    )
    print(
        f"  (b) strata-projector, {proj['projections']} projections ({proj['deliveries']:,} "
        f"applications): {proj['rate']:,.0f} ev/s from spawn ({proj['seconds']:.1f} s); "
        f"{proj['rate_after_start']:,.0f} ev/s from the first checkpoint move "
        f"(at {proj['first_move_s']} s)"
    )
    finished = ", ".join(
        f"{k} {v:.1f}s" for k, v in sorted(proj["finished"].items(), key=lambda x: x[1])
    )
    print(f"      each projection at the end: {finished}")
    cpu = proj["cpu"]
    if cpu:
        cores = ", ".join(f"{k} {v:.2f}" for k, v in cpu["cores"].items())
        print(f"      CPU cores used: {cores}; machine busy {cpu['machine_busy_pct']}%")
        if proj.get("projector_cpu_ms_per_event") is not None:
            print(f"      projector CPU per event: {proj['projector_cpu_ms_per_event']} ms")
    print(
        f"  ratio b/a: {report['ratio']:.3f} (target >= {TARGET_RATIO}); b/a' "
        f"{report['ratio_to_raw_fanout']:.3f}; a'/a {fan['rate'] / raw['rate']:.3f}"
    )
    memory = report.get("memory")
    if memory:
        print(
            f"  RSS every {report['rss_every']:,} events: "
            + " ".join(f"{s['rss_kib'] / 1024:.0f}" if s["rss_kib"] else "?" for s in proj["rss"])
            + " MiB"
        )
        if memory.get("samples"):
            line = (
                f"  RSS min {memory['min_mib']} / max {memory['max_mib']} / last "
                f"{memory['last_mib']} MiB"
            )
            if "flat" in memory:
                line += (
                    f"; after {memory['warmup_events']:,} events: {memory['after_warmup_min_mib']}"
                    f"-{memory['after_warmup_max_mib']} MiB, spread "
                    f"{memory['after_warmup_spread_pct']}% -> "
                    + ("FLAT (within 10 %)" if memory["flat"] else "NOT FLAT (> 10 %)")
                )
            print(line)
    checks = report["checks"]
    print(
        "  read models: "
        + ("OK" if checks["ok"] else "WRONG: " + "; ".join(checks["problems"]))
        + f" ({checks['users_directory']:,} users, {checks['orders']:,} orders, "
        f"{checks['dead_letters']} dead letters, paid cents {checks['daily_sales_cents']})"
    )
    print(
        ("TARGET MET" if report["target_met"] else "TARGET MISSED")
        + f" (throughput ratio {report['ratio']:.3f} vs {TARGET_RATIO})"
    )
    profile = proj.get("profile")
    if profile:
        busy = ", ".join(f"{v}%" for v in profile["gil_busy_pct"].values())
        print(
            f"\nprojector profile: {profile['samples']} samples, GIL held {busy}; {profile['file']}"
        )
        print("  self time by package:")
        for row in profile["self_by_package"][:12]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")
        print("  top cumulative:")
        for row in profile["cumulative"][:30]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")
        print("  top self:")
        for row in profile["self"][:15]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=None, help="default 200k; 1M with --memory")
    parser.add_argument("--memory", action="store_true", help="sample the projector's RSS")
    parser.add_argument("--warmup-events", type=int, default=200_000)
    parser.add_argument("--rss-every", type=int, default=RSS_EVERY, help="events per RSS sample")
    parser.add_argument("--batch-size", type=int, default=None, help="STRATA_PROJECTOR_BATCH_SIZE")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for (b)")
    parser.add_argument("--profile", action="store_true", help="py-spy on the projector")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument(
        "--db-prefix",
        default=DB_PREFIX,
        help="read databases' name prefix (another run of this bench on the host uses the default)",
    )
    wt.add_stack_arguments(parser)
    args = parser.parse_args()
    if args.redis_db == 0:
        sys.exit("projector_throughput: use a Redis DB other than 0 (it is flushed)")
    events = args.events or (1_000_000 if args.memory else 200_000)

    config = fs.config_of_arguments(args, "proj")
    if args.batch_size:
        config.extra_env["STRATA_PROJECTOR_BATCH_SIZE"] = str(args.batch_size)
    namespace, out = config.namespace, config.log_dir
    settings = Settings(stream_namespace=namespace, nats_url=args.nats)
    batch_size = args.batch_size or settings.projector_batch_size
    roles = (*fl.CONTEXTS, "read")
    service: fl.Service | None = None
    code = 0
    try:
        log(f"fill: {events:,} envelopes into {', '.join(fl.stream_names(namespace))} ...")
        fill = loadgen.run(lambda: fill_streams(settings, events))
        log(f"    {fill.rate:,.0f} msg/s")
        log("(a) raw durable pull consumer, fetch(1000), ack each ...")
        raw = loadgen.run(lambda: raw_consume(settings, fill.per_context))
        log(f"    {raw['rate']:,.0f} ev/s")
        log(f"(a') the projector's layout, no work: fetch({batch_size}), ack per batch ...")
        fan = loadgen.run(lambda: raw_fanout(settings, fill.per_context, batch_size))
        log(f"    {fan['rate']:,.0f} ev/s")
        log(f"(b) strata-projector: databases {args.db_prefix}_*, Redis {config.redis_url} ...")
        fl.recreate_databases(config, roles)
        fl.flush_redis(config.redis_url)
        run, service = run_projector(
            config,
            fill.per_context,
            timeout=args.timeout,
            profile_seconds=args.profile_seconds if args.profile else 0,
            rss_every=args.rss_every,
        )
        checks = verify(config, fill.expected)
    except RuntimeError as error:
        log(f"projector_throughput: FAILED: {error}")
        code = 2
        run = None
    finally:
        if service is not None:
            fl.stop_service(service)
        if not args.keep:
            loadgen.run(lambda: fl.delete_streams(args.nats, fl.stream_names(namespace)))
            fl.drop_databases(config, roles)
            fl.flush_redis(config.redis_url)
    if run is None or run.done is None:
        if service is not None:
            log(f"--- projector log (tail) ---\n{service.log_tail()}")
        sys.exit(code or 2)

    keys = filled_models(fill.per_context)
    deliveries = sum(fill.per_context[k.context] for k in keys)
    rate = fill.events / run.done
    after_start = fill.events / (run.done - run.first_move) if run.first_move else rate
    projector_cpu = None
    if run.cpu and "projector" in run.cpu["cores"]:
        projector_cpu = round(
            1000 * run.cpu["cores"]["projector"] * run.cpu["wall_s"] / fill.events, 3
        )
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(STARTED)),
        "code": fl.code_digest(),
        "namespace": namespace,
        "batch_size": batch_size,
        "env": args.env,
        "fill": {
            "events": fill.events,
            "per_context": fill.per_context,
            "seconds": round(fill.seconds, 2),
            "rate": round(fill.rate, 1),
            "mean_payload_bytes": round(fill.bytes / fill.events),
        },
        "raw": raw,
        "raw_fanout": fan,
        "ratio_to_raw_fanout": round(rate / fan["rate"], 3),
        "projector": {
            "projections": len(keys),
            "deliveries": deliveries,
            "seconds": round(run.done, 3),
            "rate": round(rate, 1),
            "first_move_s": round(run.first_move or 0, 3),
            "rate_after_start": round(after_start, 1),
            "finished": run.finished,
            "cpu": run.cpu,
            "projector_cpu_ms_per_event": projector_cpu,
            "rss": run.rss,
            "rss_series": run.rss_series,
            "progress_series": run.progress_series,
            "profile": run.profile,
        },
        "ratio": round(rate / raw["rate"], 3),
        "ratio_after_start": round(after_start / raw["rate"], 3),
        "target_ratio": TARGET_RATIO,
        "target_met": rate / raw["rate"] >= TARGET_RATIO,
        "checks": checks,
        "rss_every": args.rss_every,
        "logs": str(out),
    }
    if args.memory:
        report["memory"] = memory_verdict(run.rss, args.warmup_events)
    if args.save:
        args.save.write_text(json.dumps(report, indent=2, default=str))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report)
        print(f"  logs: {out}")


if __name__ == "__main__":
    main()
