"""Full rebuild of a read model from the event store vs raw writes of the same rows, one run.

Fill: N events (default 1,000,000) into fresh PostgreSQL event stores (`strata_bench_rb_users`,
`strata_bench_rb_orders`), saved through the applications in big batches (one transaction per
400 aggregates, with their metadata rows): one user registered per 50 events; each order
created, given two lines, placed and paid (5 events).

Live: `orders` (PostgreSQL read database `strata_bench_rb_read`) and `user_stats` (Redis, a
flushed logical database `--redis-db`, default 8) projected from the log in-process, so a rebuild
has something to verify against.

Rebuild: `replay rebuild <projection> --json` as a subprocess (stack settings), timed by the
command itself: the rate of the bulk backfill (projections.bulk_rebuild; events read / backfill
seconds) and the whole run (backfill, catch-up, verify by checksum against live, swap). Peak
resident memory is the child's `ru_maxrss` (wait4), i.e. its VmHWM.

Raw, in the same run, the same end state written without projection logic:
- PostgreSQL: COPY of the rebuilt model's rows (`orders_v2`, `order_lines_v2`, read back) into
  empty tables of the same shape (primary keys included);
- Redis: the rebuilt model's hashes (read back) written with pipelined HSET, 1,000 per round trip.
The ratio is rebuild events/s ÷ raw events/s, where raw events/s = events ÷ the raw write time of
the rows those events produce (target ≥ 0.25), i.e. raw seconds ÷ backfill seconds.

    .venv/bin/python bench/rebuild.py                  # 1M events
    .venv/bin/python bench/rebuild.py --events 200000  # a shorter run
    .venv/bin/python bench/rebuild.py --suffix _me --redis-db 12  # beside another run
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from bench_host import flush_redis_database
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier
from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contexts.registered import REGISTRY
from contexts.settings import Settings, database_url_fields
from domain.orders.order import Order
from domain.ports import EventMetadata, SideRecords
from domain.users.profile import UserProfile
from eventlog.envelope import envelope_source
from eventlog.stores import build_services
from projections.catchup import project_log
from projections.targets import find_projection, following_targets
from readmodels.sql import PostgresDatabase
from runtime.settings import database_url_field

DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
NAMES = (*REGISTRY.names, "read")
BATCH = 400
TARGET = 0.25
REPLAY = str(Path(sys.executable).parent / "replay")
clock = time.perf_counter


def log(message: str) -> None:
    print(f"[{datetime.now(UTC).strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def databases(admin: str, suffix: str) -> Iterator[dict[str, str]]:
    names = {name: f"strata_bench_rb_{name}{suffix}" for name in NAMES}
    with psycopg.connect(admin, autocommit=True) as conn:
        for dbname in names.values():
            conn.execute(SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(Identifier(dbname)))
            conn.execute(SQL("CREATE DATABASE {}").format(Identifier(dbname)))
    yield {name: make_conninfo(admin, dbname=dbname) for name, dbname in names.items()}


def metadata(events: list[Any]) -> SideRecords:
    return SideRecords(
        event_metadata=[
            EventMetadata(e.originator_id, e.originator_version, e.timestamp, "bench")
            for e in events
        ]
    )


def fill(settings: Settings, count: int) -> dict[str, int]:
    services = build_services(settings)
    written = {"users": 0, "orders": 0}
    try:
        users: list[uuid.UUID] = []
        while written["users"] + written["orders"] < count:
            profiles = [
                UserProfile.register(f"user {len(users) + i}", f"u{len(users) + i}@bench.io")
                for i in range(max(1, BATCH // 10))
            ]
            events = [e for p in profiles for e in p.collect_events()]
            services.users.save(*events, side_records=metadata(events))
            users += [p.id for p in profiles]
            written["users"] += len(events)
            orders = []
            for index in range(BATCH):
                order = Order.create(users[(len(users) - 1 - index) % len(users)], "EUR")
                order.add_line("A", 1 + index % 3, Decimal("9.99"))
                order.add_line("B", 1, Decimal("4.50"))
                order.place()
                order.mark_paid()
                orders.append(order)
            events = [e for o in orders for e in o.collect_events()]
            services.orders.save(*events, side_records=metadata(events))
            written["orders"] += len(events)
            total = written["users"] + written["orders"]
            if total // 100_000 != (total - len(events)) // 100_000:
                log(f"  {total:,} events")
    finally:
        services.close()
    return written


def project_live(settings: Settings, redis: Redis) -> float:
    assert settings.read_database_url
    db = PostgresDatabase(settings.read_database_url)
    services = build_services(settings)
    try:
        chosen = [find_projection("orders"), find_projection("user_stats")]
        targets = following_targets(db, redis, projections=[p for p in chosen if p])
        started = clock()
        sources = {s.name: envelope_source(s.recorder) for s in services.all()}
        project_log(sources, targets, page_size=5000)
        return clock() - started
    finally:
        services.close()
        db.close()


def rebuild(env: dict[str, str], projection: str) -> tuple[dict[str, Any], int]:
    """`replay rebuild` as a child; its JSON result and its peak RSS in kB."""
    with open(os.devnull, "w") as devnull:
        child = subprocess.Popen(
            [REPLAY, "rebuild", projection, "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=devnull,
            text=True,
        )
        assert child.stdout is not None
        output = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"replay rebuild {projection} failed (status {status}): {output}")
    return json.loads(output), int(usage.ru_maxrss)


def raw_copy(url: str) -> tuple[float, int]:
    """COPY the rebuilt orders model's rows into empty tables of the same shape."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_orders, raw_order_lines")
        conn.execute("CREATE TABLE raw_orders (LIKE orders_v2 INCLUDING ALL)")
        conn.execute("CREATE TABLE raw_order_lines (LIKE order_lines_v2 INCLUDING ALL)")
        buffers = {}
        for table in ("orders_v2", "order_lines_v2"):
            buffer = io.BytesIO()
            with conn.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                for chunk in copy:
                    buffer.write(chunk)
            buffers[table] = buffer.getvalue()
        rows = sum(data.count(b"\n") for data in buffers.values())
        started = clock()
        with conn.transaction():
            for table, data in buffers.items():
                with conn.cursor().copy(f"COPY raw_{table.removesuffix('_v2')} FROM STDIN") as copy:
                    copy.write(data)
        seconds = clock() - started
        conn.execute("DROP TABLE raw_orders, raw_order_lines")
    return seconds, rows


def raw_redis(redis: Redis) -> tuple[float, int]:
    """HSET the rebuilt user_stats hashes again, pipelined, under another prefix."""
    hashes: list[tuple[str, dict[Any, Any]]] = []
    for key in redis.scan_iter(match="rm:{user_stats:v2}:*", count=5000):
        name = key.decode()
        if ":ckpt:" in name or ":seq:" in name:
            continue
        hashes.append(
            (name.replace("rm:{user_stats:v2}:", "raw:{user_stats}:"), redis.hgetall(key))
        )
    started = clock()
    pipe = redis.pipeline(transaction=False)
    for index, (key, fields) in enumerate(hashes, 1):
        pipe.hset(key, mapping=fields)
        if index % 1000 == 0:
            pipe.execute()
    pipe.execute()
    seconds = clock() - started
    return seconds, len(hashes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--redis-db", type=int, default=8)
    parser.add_argument(
        "--suffix", default="", help="appended to the database names (runs side by side)"
    )
    parser.add_argument(
        "--admin-url", default=os.environ.get("STRATA_TEST_POSTGRES_URL", DEFAULT_ADMIN)
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("STRATA_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    )
    args = parser.parse_args()

    redis_url = f"{args.redis_url.rstrip('/')}/{args.redis_db}"
    redis = Redis.from_url(redis_url)
    flush_redis_database(redis)
    with databases(args.admin_url, args.suffix) as urls:
        settings = Settings(
            **database_url_fields(urls),
            redis_url=redis_url,
            group_commit=False,
        )
        log(f"filling {args.events:,} events")
        started = clock()
        written = fill(settings, args.events)
        events = sum(written.values())
        log(f"filled {written} in {clock() - started:.1f} s")
        live_seconds = project_live(settings, redis)
        log(f"live projection (in-process, both models) {live_seconds:.1f} s")
        env = {
            **os.environ,
            **{f"STRATA_{database_url_field(name).upper()}": url for name, url in urls.items()},
            "STRATA_REDIS_URL": redis_url,
        }
        report: dict[str, Any] = {"events": events, "by_context": written}
        raws: dict[str, Callable[[], tuple[float, int]]] = {
            "orders": partial(raw_copy, urls["read"]),
            "user_stats": partial(raw_redis, redis),
        }
        for projection, raw in raws.items():
            log(f"replay rebuild {projection}")
            result, rss_kb = rebuild(env, projection)
            read = result["backfill"]["events"]
            backfill = result["backfill"]["seconds"]
            raw_seconds, rows = raw()
            rebuild_rate = read / backfill
            raw_rate = read / raw_seconds
            report[projection] = {
                "events_read": read,
                "backfill_seconds": backfill,
                "rebuild_events_per_s": round(rebuild_rate),
                "whole_run_seconds": result["seconds"],
                "raw_seconds": round(raw_seconds, 3),
                "raw_rows_or_keys": rows,
                "raw_rows_per_s": round(rows / raw_seconds),
                "raw_events_per_s": round(raw_rate),
                "ratio": round(rebuild_rate / raw_rate, 3),
                "target": TARGET,
                "peak_rss_mb": round(rss_kb / 1024, 1),
                "swapped": result["swapped"],
            }
            log(json.dumps(report[projection]))
        print(json.dumps(report, indent=2))
    redis.flushdb()


if __name__ == "__main__":
    main()
