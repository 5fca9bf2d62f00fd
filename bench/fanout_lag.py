"""Fan-out lag: command commit -> visible in the Redis and PostgreSQL read models, in one run
with the raw JetStream tail lag it is judged against.

(a) raw floor: a JetStream stream of its own (namespaced), an open-loop publisher at `--rate`
    messages/s (`js.publish`, each awaiting its ack) and one durable pull consumer in the same
    process doing what the projector does (`fetch(256, timeout=1)`, ack each). Per message: the
    time from just before the publish to the consumer holding it ("tail lag").
(b) the stack: fresh databases `strata_bench_fan_users` / `_orders` (event stores) and
    `strata_bench_fan_read` (read models; `--db-prefix` names them otherwise, for runs that share
    a PostgreSQL), Redis DB `--redis-db` (FLUSHDB first), streams under a
    unique `STRATA_STREAM_NAMESPACE`; `strata-write-api`, one `strata-relay --context <c>` per
    context and `strata-projector` as subprocesses. With `--capacity`, closed-loop clients first
    measure the stack's capacity (commands/s visible in every read model, with the fulfilments of
    the orders they placed ended) and `--rate` defaults to half of it. With `--burner`, a
    busy-loop process competes for one core from the warm-up to the end of the drain. An
    open-loop driver sends `--rate` commands/s for `--warmup` + `--seconds` s, a mix of
    customer journeys: register a user, then twice: create an order, add two lines, place it
    (1 + 2 x 4 = 9 commands, each appending one event; each placed order's saga then pays and
    ships it through the simulators). For every 2xx command of the
    measured window:

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

(a') after the stack has stopped: the CPU (/proc) of the raw operations one command needs (an
    INSERT + COMMIT, a JetStream publish + ack, a fetch + ack, the read-model upserts and Redis
    commands) per operation, printed beside the stack's CPU per command (target ratio <= 5).

`--profile` attaches `py-spy record --gil --nonblocking` to the write API, the projector and both
relays for the measured window (it costs them CPU, so read lags from unprofiled runs).

    .venv/bin/python bench/fanout_lag.py                          # 300 commands/s for 60 s
    .venv/bin/python bench/fanout_lag.py --rate 300 --seconds 10 --raw-seconds 5
    .venv/bin/python bench/fanout_lag.py --capacity --burner --seconds 20 --raw-seconds 5
    .venv/bin/python bench/fanout_lag.py --json > fanout.json

Exit 0 whether or not the targets are met; 2 if the stack did not start, more than 1 % of the
commands failed, or some commands never became visible.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import loadgen
from bench_auth import trusted_identity
from bench_host import HOST, log, ms
from fanout_journeys import Command, Driver
from fanout_raw import raw_tail_lag
from fanout_rawops import RAW_ROLE, raw_operations_cpu
from fanout_report import MAX_ERROR_RATIO, analyse, code_digest, cpu_comparison, print_report
from fanout_run import Plan, StackRun, drive
from fanout_stack import (
    CONTEXTS,
    DB_PREFIX,
    SIMULATORS,
    ModelKey,
    Service,
    StackConfig,
    add_stack_arguments,
    clock,
    delete_streams,
    drop_databases,
    flush_redis,
    percentiles,
    read_models,
    recreate_databases,
    spawn,
    start_projector,
    start_relay,
    start_simulator,
    start_write_api,
    stop_service,
    stream_names,
    wait_ready,
)
from fanout_watch import Observations, watch_postgres, watch_redis

# The names bench/overload_lag.py uses as `fl.<name>`.
__all__ = [
    "CONTEXTS",
    "DB_PREFIX",
    "HOST",
    "MAX_ERROR_RATIO",
    "Command",
    "Driver",
    "ModelKey",
    "Observations",
    "Service",
    "StackConfig",
    "StackRun",
    "analyse",
    "clock",
    "code_digest",
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
    "start_simulators",
    "start_write_api",
    "stop_service",
    "stream_names",
    "wait_ready",
    "watch_postgres",
    "watch_redis",
]

STARTED = time.time()
DEFAULT_RATE = 300.0
RAW_RATE_WITH_CAPACITY = 100.0
"""Messages/s of the raw tail-lag run when the stack's rate is not known yet (--capacity)."""
RAW_OPS_MAX_RATE = 100.0
"""The raw operations run one after another, at the stack's rate up to this."""


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text}")
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rate", type=positive, default=None, help="commands/s (300; half the capacity with it)"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0, help="load before the window")
    parser.add_argument("--raw-seconds", type=float, default=15.0, help="each raw run")
    parser.add_argument(
        "--raw-ops-rate", type=positive, default=None, help="raw operations/s (the rate, <= 100)"
    )
    parser.add_argument("--capacity", action="store_true", help="measure capacity, run at half")
    parser.add_argument(
        "--capacity-clients", type=positive_int, default=16, help="closed-loop clients"
    )
    parser.add_argument("--capacity-seconds", type=positive, default=10.0, help="closed loop")
    parser.add_argument("--burner", action="store_true", help="a busy loop on one core")
    parser.add_argument("--workers", type=int, default=1, help="write API processes")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy on write API, projector, relays"
    )
    add_stack_arguments(parser)
    parser.add_argument(
        "--db-prefix", default=DB_PREFIX, help="its databases' names (another run's are dropped)"
    )
    parser.add_argument("--dump", type=Path, default=None, help="per-command times, JSON lines")
    args = parser.parse_args()
    if args.redis_db == 0:
        sys.exit("fanout_lag: use a Redis DB other than 0 (it is flushed)")
    if args.rate is None and not args.capacity:
        args.rate = DEFAULT_RATE
    return args


def raw_tail(args: argparse.Namespace, config: StackConfig) -> dict[str, Any]:
    """(a) the raw JetStream tail lag."""
    rate = args.rate or RAW_RATE_WITH_CAPACITY
    log(f"(a) raw JetStream tail lag: {rate:g} msg/s for {args.raw_seconds:g} s ...")
    raw = loadgen.run(lambda: raw_tail_lag(args.nats, config.namespace, rate, args.raw_seconds))
    log(f"    p50 {raw['tail_lag']['p50_ms']} ms, p99 {raw['tail_lag']['p99_ms']} ms")
    return raw


def raw_operations(args: argparse.Namespace, config: StackConfig, rate: float) -> dict[str, Any]:
    """(a') the CPU of the raw operations a command needs, after the stack has stopped."""
    rate = args.raw_ops_rate or min(rate, RAW_OPS_MAX_RATE)
    log(f"(a') raw operations of a command: {rate:g}/s for {args.raw_seconds:g} s ...")
    recreate_databases(config, (RAW_ROLE,))
    try:
        operations = loadgen.run(
            lambda: raw_operations_cpu(
                config.url(RAW_ROLE),
                config.redis_url,
                config.nats_url,
                config.namespace,
                rate=rate,
                seconds=args.raw_seconds,
            )
        )
    finally:
        drop_databases(config, (RAW_ROLE,))
    log(f"    {operations.get('total_ms')} ms of CPU per command's raw operations")
    return operations


def start_simulators(config: StackConfig, services: dict[str, Service]) -> None:
    """The providers, ready, and the stack's settings pointed at them (before its services)."""
    for name in SIMULATORS:
        services[name] = start_simulator(config, name)
        wait_ready(services[name])


def start_stack(config: StackConfig, services: dict[str, Service]) -> None:
    start_simulators(config, services)
    services["write-api"] = start_write_api(config)
    wait_ready(services["write-api"])
    for context in CONTEXTS:
        services[f"relay-{context}"] = start_relay(config, context)
    services["projector"] = start_projector(config)
    for name in (*(f"relay-{context}" for context in CONTEXTS), "projector"):
        wait_ready(services[name])
    log("    stack ready")


def run_stack(args: argparse.Namespace, config: StackConfig) -> tuple[StackRun, list[Service]]:
    """(b) the stack on fresh databases, streams and Redis DB; all of it removed at the end."""
    where = f"databases {config.db_prefix}_*, Redis {config.redis_url}, ns {config.namespace}"
    log(f"(b) stack: {where}")
    roles = (*CONTEXTS, "read")
    recreate_databases(config, roles)
    flush_redis(config.redis_url)
    services: dict[str, Service] = {}
    plan = Plan(
        rate=args.rate,
        seconds=args.seconds,
        warmup=args.warmup,
        profile=args.profile,
        capacity_clients=args.capacity_clients if args.capacity else 0,
        capacity_seconds=args.capacity_seconds,
        burner=args.burner,
    )
    try:
        start_stack(config, services)
        run = loadgen.run(lambda: drive(config, services, plan))
    except (RuntimeError, OSError, psycopg.Error) as error:
        log(f"fanout_lag: FAILED: {error}")
        print_logs(services.values())
        sys.exit(2)
    finally:
        for service in reversed(list(services.values())):
            stop_service(service)
        if not args.keep:
            loadgen.run(lambda: delete_streams(args.nats, stream_names(config.namespace)))
            drop_databases(config, roles)
            flush_redis(config.redis_url)
    return run, list(services.values())


def print_logs(services: Iterable[Service]) -> None:
    for service in services:
        log(f"--- {service.name} log (tail) ---\n{service.log_tail()}")


def dump(path: Path, rows: list[dict[str, Any]], run: StackRun) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    with open(path.with_suffix(".checkpoints.jsonl"), "w") as f:
        for key, positions in run.obs.positions.items():
            for position, at in zip(positions, run.obs.times[key], strict=True):
                line = {"model": key.label, "position": position, "at": at - run.measure_from}
                f.write(json.dumps(line) + "\n")


def main() -> None:
    args = parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="strata-fan-"))
    out.mkdir(parents=True, exist_ok=True)
    with trusted_identity() as jwks_url:  # the identity's JWKS, which the services trust
        config = StackConfig(
            jwks_url=jwks_url,
            pg=args.pg.rstrip("/"),
            redis_url=f"{args.redis.rstrip('/')}/{args.redis_db}",
            nats_url=args.nats,
            namespace=f"benchfan{uuid.uuid4().hex[:8]}",
            db_prefix=args.db_prefix,
            workers=args.workers,
            log_dir=out,
            extra_env=dict(item.split("=", 1) for item in args.env),
        )
        raw = raw_tail(args, config)
        run, services = run_stack(args, config)
        raw["operations"] = raw_operations(args, config, run.rate)

    result = analyse(run, raw)
    rows = result.pop("rows")
    if args.dump:
        dump(args.dump, rows, run)
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(STARTED)),
        "code": code_digest(),
        "namespace": config.namespace,
        "rate": run.rate,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "workers": args.workers,
        "env": args.env,
        "capacity": run.capacity,
        "burner": run.burner,
        "raw": raw,
        "result": result,
        "driver": run.driver,
        "cpu": run.cpu,
        "cpu_per_command": cpu_comparison(run.cpu, result, raw),
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
        print_logs(services)
        sys.exit(2)


if __name__ == "__main__":
    main()
