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
import contextlib
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import loadgen
import write_throughput as wt
from bench_auth import trusted_identity
from fanout_cpu import BusySampler, Spy, cpu_by_service
from fanout_journeys import Command, Driver, Journey
from fanout_raw import raw_tail_lag
from fanout_report import MAX_ERROR_RATIO, analyse, code_digest, print_report
from fanout_run import StackRun, drive
from fanout_stack import (
    CHANNEL_PG,
    CONTEXTS,
    DB_PREFIX,
    HOST,
    WALL_OFFSET,
    ModelKey,
    Service,
    StackConfig,
    clock,
    delete_streams,
    drop_databases,
    flush_redis,
    log,
    ms,
    percentiles,
    read_models,
    recreate_databases,
    spawn,
    start_projector,
    start_relay,
    start_write_api,
    stop_service,
    stream_names,
    wait_ready,
)
from fanout_watch import Observations, watch_postgres, watch_redis, watch_subjects

# The names the other benches use as `fl.<name>` (bench/overload_lag.py,
# bench/projector_throughput.py).
__all__ = [
    "CHANNEL_PG",
    "CONTEXTS",
    "DB_PREFIX",
    "HOST",
    "MAX_ERROR_RATIO",
    "WALL_OFFSET",
    "BusySampler",
    "Command",
    "Driver",
    "Journey",
    "ModelKey",
    "Observations",
    "Service",
    "Spy",
    "StackConfig",
    "StackRun",
    "analyse",
    "clock",
    "code_digest",
    "cpu_by_service",
    "delete_streams",
    "drive",
    "drop_databases",
    "flush_redis",
    "log",
    "ms",
    "percentiles",
    "print_report",
    "raw_tail_lag",
    "read_models",
    "recreate_databases",
    "spawn",
    "start_projector",
    "start_relay",
    "start_write_api",
    "stop_service",
    "stream_names",
    "wait_ready",
    "watch_postgres",
    "watch_redis",
    "watch_subjects",
]

STARTED = time.time()


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
