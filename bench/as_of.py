"""Point-in-time replay: "state as of T" against the raw reads it cannot beat, in one run.

For each size (default 1k, 10k, 100k events) one user profile is written to PostgreSQL database
`strata_bench_as_of` (dropped and created), fast: 1,000 events per transaction through the
application's `save`, with their time-index rows, and a snapshot at every multiple of the interval
(default 100, the service's default), exactly what the command service would have stored. Events
are stamped one second apart (a fake clock), so T spans the aggregate's whole life.

Then, at uniformly random T between the first and the last event:

(a) raw: one probe of the time index (`SELECT originator_version ... WHERE originator_id = $1 AND
    timestamp <= T ORDER BY timestamp DESC LIMIT 1`), then the `--interval` events up to that
    version read by primary key, undecoded (psycopg 3, prepared statements, one connection): the
    least any "state as of T" must read with snapshots at that interval.
(b) `CommandService.state_at(UserProfile, id, at=T)` with snapshots: version_at, nearest snapshot
    at or before the version, the events after it, the fold.
(c) the same without snapshots (`snapshot_interval=0`): the fold from version 1.

Prints p50/p99 per size, the ratios b/a and c/b, and whether p50 (b) at the largest size meets
the target (<= 20 ms) and stays roughly flat (largest / smallest <= 2). Checks on a few T that (b)
and (c) give the same state. Exit code 0 whether or not the target is met.

    .venv/bin/python bench/as_of.py
    .venv/bin/python bench/as_of.py --sizes 1000 10000 --samples 300 --json
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch
from uuid import UUID

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier

from domain.ports import EventMetadata, SideRecords
from domain.service import CommandService
from domain.users.profile import UserProfile
from eventlog.stores import open_store_for_reading
from runtime.settings import settings_model

DATABASE = "strata_bench_as_of"
BATCH = 1000
TARGET_P50_MS = 20.0
FLAT_RATIO = 2.0
START = datetime(2026, 1, 1, tzinfo=UTC)
HOBBIES = ["Chess", "Go", "Poetry", "Rowing", "Piano"]
CITIES = [("London", "GB"), ("Paris", "FR"), ("Turin", "IT")]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def recreate_database(admin_url: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(Identifier(DATABASE)))
        conn.execute(SQL("CREATE DATABASE {}").format(Identifier(DATABASE)))
    return make_conninfo(admin_url, dbname=DATABASE)


def service(url: str, interval: int) -> CommandService:
    settings = settings_model(("users",))(users_database_url=url, snapshot_interval=interval)
    return open_store_for_reading(settings, "users")


class Clock:
    """One second per event: the aggregate's life spans `size` seconds."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def next_command(profile: UserProfile, n: int) -> None:
    """Renames, hobbies in and out, moves: the state stays small (<= 5 hobbies)."""
    step = n % 4
    if step == 0:
        profile.rename(f"Ada {n}")
    elif step == 1 and len(profile.hobbies) < len(HOBBIES):
        profile.add_hobby(next(h for h in HOBBIES if h not in profile.hobbies))
    elif step == 2 and profile.hobbies:
        profile.remove_hobby(profile.hobbies[0])
    else:
        city, country = CITIES[n % len(CITIES)]
        if (city, country) == (profile.city, profile.country):
            profile.rename(f"Ada {n}")
        else:
            profile.change_location(city, country)


def build(store: CommandService, size: int, interval: int) -> tuple[UUID, float]:
    """Write one profile of `size` events; snapshots as the command service takes them."""
    started = time.perf_counter()
    assert store.snapshots is not None
    with patch.object(UserProfile.Event, "create_timestamp", staticmethod(Clock())):
        profile = UserProfile.register("Ada", "ada@example.com")
        n = 1
        while profile.version < size:
            snapshots = []
            while profile.version < size and len(profile.pending_events) < BATCH:
                next_command(profile, n)
                n += 1
                if profile.version % interval == 0:
                    snapshot = type(profile).Snapshot.take(profile)
                    # the aggregate moves on before this batch is saved: freeze the state now
                    snapshots.append(
                        dataclasses.replace(snapshot, state=copy.deepcopy(snapshot.state))
                    )
            events = profile.collect_events()
            metadata = [
                EventMetadata(e.originator_id, e.originator_version, e.timestamp) for e in events
            ]
            store.save(*events, side_records=SideRecords(event_metadata=metadata))
            store.snapshots.put(snapshots)
    return profile.id, time.perf_counter() - started


class Raw:
    """The least work: the time index, then `interval` undecoded events by primary key."""

    def __init__(self, url: str, interval: int) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.interval = interval

    def __call__(self, key: UUID, at: datetime) -> int:
        # One probe of the (originator_id, timestamp) index; `max(originator_version) ... WHERE
        # timestamp <= T` would scan every entry up to T (tens of thousands at 100k events).
        row = self.conn.execute(
            "SELECT originator_version FROM users_event_metadata"
            " WHERE originator_id = %s AND timestamp <= %s ORDER BY timestamp DESC LIMIT 1",
            [key, at],
            prepare=True,
        ).fetchone()
        version = row[0] if row else None
        assert version is not None
        rows = self.conn.execute(
            "SELECT originator_version, state FROM users_events WHERE originator_id = %s"
            " AND originator_version > %s AND originator_version <= %s",
            [key, version - self.interval, version],
            prepare=True,
        ).fetchall()
        assert rows
        return int(version)

    def close(self) -> None:
        self.conn.close()


def measure(call: Callable[[datetime], Any], instants: list[datetime]) -> dict[str, float]:
    times = []
    for at in instants:
        started = time.perf_counter()
        call(at)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": statistics.median(times),
        "p99_ms": percentile(times, 0.99),
        "mean_ms": statistics.fmean(times),
        "samples": len(times),
    }


def state_of(profile: UserProfile) -> dict[str, Any]:
    return {k: v for k, v in vars(profile).items() if k != "_pending_events"}


def run_size(url: str, size: int, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    with_snapshots, without = service(url, args.interval), service(url, 0)
    raw = Raw(url, args.interval)
    try:
        key, seconds = build(with_snapshots, size, args.interval)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
        log(f"  built {size:,} events in {seconds:.1f} s ({size / seconds:,.0f} events/s)")
        span = (size - 1) * 1_000_000

        def instants(count: int) -> list[datetime]:
            first = START + timedelta(seconds=1)
            return [first + timedelta(microseconds=rng.randint(0, span)) for _ in range(count)]

        for at in instants(5):  # both paths give the same state
            assert state_of(with_snapshots.state_at(UserProfile, key, at=at)) == state_of(
                without.state_at(UserProfile, key, at=at)
            )
        measure(lambda at: raw(key, at), instants(20))  # warm-up: prepare statements, caches
        measure(lambda at: with_snapshots.state_at(UserProfile, key, at=at), instants(20))
        measured = {
            "raw": measure(lambda at: raw(key, at), instants(args.samples)),
            "snapshots": measure(
                lambda at: with_snapshots.state_at(UserProfile, key, at=at), instants(args.samples)
            ),
            "no_snapshots": measure(
                lambda at: without.state_at(UserProfile, key, at=at),
                instants(max(10, min(args.samples, args.slow_budget * 1000 // size))),
            ),
        }
    finally:
        raw.close()
        with_snapshots.close()
        without.close()
    p50 = {name: times["p50_ms"] for name, times in measured.items()}
    return {
        "events": size,
        "build_events_per_s": size / seconds,
        **measured,
        "ratio_snapshots_to_raw": p50["snapshots"] / p50["raw"],
        "ratio_no_snapshots_to_snapshots": p50["no_snapshots"] / p50["snapshots"],
    }


def report(results: list[dict[str, Any]], interval: int) -> None:
    header = (
        f"{'events':>8} | {'(a) raw p50/p99 ms':>19} | {'(b) snapshots p50/p99 ms':>25}"
        f" | {'(c) none p50/p99 ms':>20} | {'b/a':>5} | {'c/b':>6}"
    )
    print(f"snapshot interval {interval}; raw = time index + {interval} events by primary key")
    print(header)
    print("-" * len(header))
    for r in results:
        a, b, c = r["raw"], r["snapshots"], r["no_snapshots"]
        print(
            f"{r['events']:>8,} | {a['p50_ms']:>8.2f} / {a['p99_ms']:>8.2f} |"
            f" {b['p50_ms']:>11.2f} / {b['p99_ms']:>11.2f} |"
            f" {c['p50_ms']:>8.1f} / {c['p99_ms']:>9.1f} |"
            f" {r['ratio_snapshots_to_raw']:>5.1f} | {r['ratio_no_snapshots_to_snapshots']:>6.1f}"
        )
    largest, smallest = results[-1]["snapshots"]["p50_ms"], results[0]["snapshots"]["p50_ms"]
    flatness = largest / smallest
    met = largest <= TARGET_P50_MS and flatness <= FLAT_RATIO
    print(
        f"p50 (b) at {results[-1]['events']:,} events: {largest:.2f} ms (target <= "
        f"{TARGET_P50_MS:g}); largest / smallest size: {flatness:.2f} (flat if <= {FLAT_RATIO:g})"
    )
    print("TARGET MET" if met else "TARGET MISSED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--samples", type=int, default=500, help="random T per size and path")
    parser.add_argument("--interval", type=int, default=100, help="snapshot interval")
    parser.add_argument(
        "--slow-budget",
        type=int,
        default=3000,
        help="(c) samples per size: at most this many thousand events folded in all",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    if args.interval < 1:
        parser.error("--interval must be at least 1")

    rng = random.Random(args.seed)
    url = recreate_database(args.pg)
    results = []
    for size in sorted(args.sizes):
        log(f"size {size:,}")
        results.append(run_size(url, size, args, rng))
    if args.json:
        print(json.dumps({"interval": args.interval, "results": results}, indent=2))
    else:
        report(results, args.interval)


if __name__ == "__main__":
    main()
