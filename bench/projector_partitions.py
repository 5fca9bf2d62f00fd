"""Projector workers (`STRATA_PROJECTOR_MODE=partitioned`): events/s with 1 worker and with N
workers (default 2), against raw JetStream consumption, in one run.

(a) raw: `--events` synthetic envelopes (projector_throughput.py's journeys) in fresh namespaced
streams, then one durable pull consumer per stream, fetch(1000), ack each, no work.
(b) for k in (1, N): fresh read databases and Redis DB over the same streams; k
`strata-projector` workers are started at once. They first share the partitions out (the first
to join takes them all, then gives the later ones their share), so the rate is measured from
the moment they have (each ready, holding at most its fair share, every partition's consumers
attached): the events not yet applied then ÷ the time until every projection's checkpoint of
every partition has reached that partition's last event (`rm_partition_checkpoints` and the
Redis `…:ckpt:<context>:pNN` keys, polled every 50 ms). Also printed: when the partitions were
shared out, each worker's consumers, and the CPU per process over the measured window.

Prints the ratio N/1 (target >= 1.5) and 1-worker / raw.

    .venv/bin/python bench/projector_partitions.py                  # 100k events, 1 vs 2
    .venv/bin/python bench/projector_partitions.py --events 30000   # a short check
    .venv/bin/python bench/projector_partitions.py --workers 3

Exit 0 whether or not the target is met; 2 if a worker did not start or did not finish within
`--timeout` seconds.
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import fanout_cpu as fc
import fanout_report as fr
import fanout_stack as fs
import loadgen
from bench_host import HOST, log
from proc_cpu import Window
from projector_fill import fill_streams, synthetic_events
from projector_raw import raw_consume

from contexts.settings import Settings
from eventlog.envelope import PARTITIONS
from readmodels.keys import RedisLayout

TARGET = 1.5
DB_PREFIX = "strata_bench_part"
POLL = 0.05
LAYOUT = RedisLayout()

Slot = tuple[str, int]
"""(context, partition)"""


def partition_positions(count: int) -> dict[Slot, list[int]]:
    """The positions of each (context, partition) in the fill (the same seed: the same events)."""
    found: dict[Slot, list[int]] = defaultdict(list)
    for envelope in synthetic_events(count):
        found[(envelope.context, envelope.partition)].append(envelope.position)
    return dict(found)


def read_partition_checkpoints(
    redis_client: Any, pg: psycopg.Connection[Any], keys: list[fs.ModelKey]
) -> dict[tuple[fs.ModelKey, int], int]:
    found: dict[tuple[fs.ModelKey, int], int] = {}
    redis_slots = [(k, p) for k in keys if k.store == "redis" for p in range(PARTITIONS)]
    names = [
        LAYOUT.partition_checkpoint_key(k.projection, k.version, k.context, p)
        for k, p in redis_slots
    ]
    for slot, value in zip(redis_slots, redis_client.mget(names) if names else [], strict=True):
        found[slot] = int(value or 0)
    try:
        rows = pg.execute(
            "SELECT projection, version, context, partition, position FROM rm_partition_checkpoints"
        ).fetchall()
    except psycopg.errors.UndefinedTable:
        rows = []
    by_slot = {(r[0], r[1], r[2], r[3]): int(r[4]) for r in rows}
    for key in keys:
        if key.store == "postgres":
            for p in range(PARTITIONS):
                found[(key, p)] = by_slot.get((key.projection, key.version, key.context, p), 0)
    return found


def applied_events(
    checkpoints: dict[tuple[fs.ModelKey, int], int], positions: dict[Slot, list[int]]
) -> int:
    """Events every projection of their context has applied (per partition, the slowest)."""
    lowest: dict[Slot, int] = {}
    for (key, p), position in checkpoints.items():
        slot = (key.context, p)
        lowest[slot] = min(lowest.get(slot, position), position)
    return sum(bisect.bisect_right(positions.get(s, []), at) for s, at in lowest.items())


@dataclass
class WorkersRun:
    workers: int
    balance_seconds: float  # from spawn until the partitions were shared out
    seconds: float  # from spawn until done
    left: int  # events not yet applied when the partitions were shared out
    consumers: list[int]
    cpu: dict[str, Any] | None

    @property
    def rate(self) -> float:
        window = self.seconds - self.balance_seconds
        return self.left / window if window > 0 else 0.0


def readiness(service: fs.Service) -> tuple[int, int]:
    """(HTTP status, consumers) of a worker's /readyz (0 when it does not answer)."""
    request = loadgen.request_bytes("GET", "/readyz", f"{HOST}:{service.port}")
    try:
        response = loadgen.run(lambda: loadgen.fetch(HOST, service.port, request, 1.0))
    except (OSError, TimeoutError, EOFError):
        return 0, 0
    if response.status != 200:
        return response.status, 0
    return 200, int(json.loads(response.body).get("consumers", 0))


def shared_out(services: list[fs.Service]) -> list[int] | None:
    """The workers' consumers once they hold every partition, none more than its fair share,
    every consumer attached (None before)."""
    per_partition = len(fs.read_models())
    share = -(-PARTITIONS // len(services)) * per_partition
    answers = [readiness(service) for service in services]
    consumers = [n for _, n in answers]
    if (
        all(status == 200 for status, _ in answers)
        and sum(consumers) == PARTITIONS * per_partition
        and max(consumers) <= share
    ):
        return consumers
    return None


def run_workers(
    config: fs.StackConfig,
    count: int,
    positions: dict[Slot, list[int]],
    *,
    timeout: float,
) -> tuple[WorkersRun, list[fs.Service]]:
    from redis import Redis  # noqa: PLC0415

    keys = [k for k in fs.read_models() if any(c == k.context for c, _ in positions)]
    lasts = {slot: values[-1] for slot, values in positions.items()}
    events = sum(len(values) for values in positions.values())
    redis_client = Redis.from_url(config.redis_url)
    pg = psycopg.connect(config.url("read"), autocommit=True)
    spawned = fs.clock()
    services = [fs.start_projector(config, f"worker-{n + 1}") for n in range(count)]
    window = Window()
    balanced: tuple[float, int, list[int]] | None = None
    try:
        while True:
            at = fs.clock() - spawned
            if at > timeout:
                raise RuntimeError(f"{count} workers did not finish within {timeout:g} s")
            for service in services:
                if service.process.poll() is not None:
                    raise RuntimeError(f"{service.name} exited\n{service.log_tail()}")
            checkpoints = read_partition_checkpoints(redis_client, pg, keys)
            if balanced is None:
                consumers = shared_out(services)
                if consumers is not None:
                    window("start")
                    left = events - applied_events(checkpoints, positions)
                    balanced = (fs.clock() - spawned, left, consumers)
            elif all(
                position >= lasts.get((key.context, p), 0)
                for (key, p), position in checkpoints.items()
            ):
                window("end")
                cpu = fc.cpu_by_service(window, services)
                balance_seconds, left, consumers = balanced
                return WorkersRun(count, balance_seconds, at, left, consumers, cpu), services
            time.sleep(POLL)
    finally:
        redis_client.close()
        pg.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="N, compared with 1")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--db-prefix", default=DB_PREFIX)
    fs.add_stack_arguments(parser)
    args = parser.parse_args()
    if args.redis_db == 0:
        sys.exit("projector_partitions: use a Redis DB other than 0 (it is flushed)")
    config = fs.config_of_arguments(
        args,
        "part",
        {"STRATA_PROJECTOR_MODE": "partitioned", "STRATA_PROJECTOR_REBALANCE_SECONDS": "0.5"},
    )
    namespace, out = config.namespace, config.log_dir
    settings = Settings(stream_namespace=namespace, nats_url=args.nats)
    roles = (*fs.CONTEXTS, "read")
    runs: list[WorkersRun] = []
    try:
        log(f"(a) fill: {args.events:,} envelopes, then a raw consumer, fetch(1000) ...")
        fill = loadgen.run(lambda: fill_streams(settings, args.events))
        positions = partition_positions(args.events)
        raw = loadgen.run(lambda: raw_consume(settings, fill.per_context))
        log(f"    {raw['rate']:,.0f} ev/s")
        for count in (1, args.workers):
            log(f"(b) {count} worker(s) ...")
            fs.recreate_databases(config, roles)
            fs.flush_redis(config.redis_url)
            run, services = run_workers(config, count, positions, timeout=args.timeout)
            for service in services:
                fs.stop_service(service)
            runs.append(run)
            log(f"    {run.rate:,.0f} ev/s (shared out in {run.balance_seconds:.1f} s)")
    except RuntimeError as error:
        log(f"projector_partitions: FAILED: {error}")
        sys.exit(2)
    finally:
        if not args.keep:
            loadgen.run(lambda: fs.delete_streams(args.nats, fs.stream_names(namespace)))
            fs.drop_databases(config, roles)
            fs.flush_redis(config.redis_url)
    one, many = runs
    report = {
        "code": fr.code_digest(),
        "events": fill.events,
        "raw_rate": raw["rate"],
        "runs": [
            {
                "workers": run.workers,
                "rate": round(run.rate, 1),
                "seconds": round(run.seconds, 2),
                "shared_out_after_s": round(run.balance_seconds, 2),
                "events_left_then": run.left,
                "consumers_per_worker": run.consumers,
                "cpu_cores": run.cpu["cores"] if run.cpu else None,
            }
            for run in runs
        ],
        "ratio_one_to_raw": round(one.rate / raw["rate"], 3),
        f"ratio_{many.workers}_to_1": round(many.rate / one.rate, 3) if one.rate else None,
        "target": TARGET,
        "target_met": bool(one.rate) and many.rate / one.rate >= TARGET,
        "logs": str(out),
    }
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
