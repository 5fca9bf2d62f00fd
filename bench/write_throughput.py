"""Write throughput: the write API end to end against raw PostgreSQL commits, in one run.

(a) raw: psycopg 3, N threads (default 8) each with its own connection, autocommit off, one
    INSERT + COMMIT per event into a plain events-like table in the scratch database
    `strata_bench_raw` (created if missing, truncated first).
(b) api: the write API in stack mode as a real subprocess (`strata-write-api`) on fresh databases
    `strata_bench_<context>` (plus `STRATA_BENCH_DB_SUFFIX`, for runs that share a PostgreSQL),
    one per registered context (dropped and created), driven by M
    keep-alive HTTP/1.1 connections (default 32) from a cheap asyncio client (bench/loadgen.py).
    Every request is one command that appends one event: `POST /users` with a unique email
    (`--command register`), or `PUT /users/{id}/name` on one pre-registered user per client
    (`--command rename`).

(c) with `--overload`: the same server, driven open-loop (arrivals at a fixed rate, each on an
    idle connection or a new one, whatever the answers) at twice the rate (b) measured, for as
    long as (b): goodput, p50/p99 of the admitted commands (target p99 <= 50 ms), and the
    commands refused with 503 (admission control) with their latency (target <= 5 ms). Both are
    measured from each arrival's due time, so the client's own lag is in them: it is printed
    (arrival to request written, on a kept connection and on a new one), and the client is
    scheduled first (nice -10, when permitted) with its startup objects frozen out of the
    garbage collector (a full collection over them stalled it ~100-140 ms).

Prints both rates, the ratio b/a (target >= 0.5), the latencies, the keep-alive connections each
server process holds, and the CPU each party used during each measured window. `--profile`
attaches `py-spy record` to the server for the measured window and prints where its time goes.
Exits 0 whether or not the target is met; exits 2 if more than 1 % of the API requests failed
(the figures would be meaningless) or the server did not start.

    .venv/bin/python bench/write_throughput.py                  # 10 s each, 2 workers, register
    .venv/bin/python bench/write_throughput.py --workers 1 --command rename --json
    .venv/bin/python bench/write_throughput.py --profile        # needs `pip install py-spy`
    .venv/bin/python bench/write_throughput.py --overload       # then (c) at twice (b)'s rate
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from bench_auth import trusted_identity
from bench_host import log
from proc_cpu import Window
from pyspy_stacks import summarize_profile
from write_load import ApiRun, api_end_to_end, commit_batches
from write_overload import OVERLOAD_FACTOR, overloaded, print_overload
from write_profile import Profiler
from write_raw import RawResult, raw_postgres
from write_report import build_report, print_table
from write_server import SERVER_LOG_LINES, stop_server

MAX_ERROR_RATIO = 0.01


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per part")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--raw-clients", type=int, default=8, help="(a) threads")
    parser.add_argument("--clients", type=int, default=32, help="(b) HTTP connections")
    parser.add_argument("--workers", type=int, default=2, help="(b) STRATA_WEB_WORKERS")
    parser.add_argument(
        "--command",
        choices=("register", "rename", "noop", "floor", "healthz"),
        default="register",
        help=(
            "noop: the register request answered by the same FastAPI stack without a store"
            " (bench/framework_ceiling.py); floor: answered by uvicorn and a bare ASGI app"
            " (the same file); healthz: GET /healthz of the write API"
        ),
    )
    parser.add_argument(
        "--pg", default="postgresql://postgres@127.0.0.1:5432", help="server URL, no database"
    )
    parser.add_argument("--profile", action="store_true", help="run the server under py-spy")
    parser.add_argument(
        "--overload",
        action="store_true",
        help=f"(c) then drive the same server open-loop at {OVERLOAD_FACTOR:g}x the rate of (b)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the server log and profile"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document only")
    return parser.parse_args()


def fail(message: str) -> NoReturn:
    log(f"write_throughput: FAILED: {message}")
    sys.exit(2)


def measure_raw(args: argparse.Namespace, base: str, window: Window) -> RawResult:
    log(f"(a) raw PostgreSQL: {args.raw_clients} threads, {args.seconds:g} s ...")
    try:
        raw = raw_postgres(
            base,
            clients=args.raw_clients,
            seconds=args.seconds,
            warmup=args.warmup,
            window=window,
        )
    except (RuntimeError, psycopg.Error) as error:
        fail(str(error))
    log(f"    {raw.rate:,.0f} ev/s")
    return raw


def measure_api(
    args: argparse.Namespace, base: str, out: Path, window: Window
) -> tuple[ApiRun, dict[str, Any] | None, dict[str, Any] | None]:
    """(b), then (c) with `--overload` on the same server, which is stopped after; returns
    what (c) and the profile of (b) found."""
    serving_keys = contextlib.ExitStack()  # the identity's JWKS, which the server trusts
    jwks_url = serving_keys.enter_context(trusted_identity())
    log(
        f"(b) write API: {args.command}, {args.clients} connections, {args.workers} worker(s)"
        f"{', under py-spy' if args.profile else ''}, {args.seconds:g} s ..."
    )
    profiler = Profiler(base, out, args.seconds) if args.profile else None
    try:
        api = api_end_to_end(
            base,
            clients=args.clients,
            seconds=args.seconds,
            warmup=args.warmup,
            workers=args.workers,
            command=args.command,
            profiler=profiler,
            log_dir=out,
            window=window,
            jwks_url=jwks_url,
        )
    except (RuntimeError, psycopg.Error) as error:
        serving_keys.close()  # its server thread would keep this process alive
        fail(str(error))
    overload = None
    if args.overload and api.load.rate > 0:
        rate = api.load.rate * OVERLOAD_FACTOR
        overload = overloaded(api.server, api.overload_requests, rate, args.seconds)
    stop_server(api.server)
    serving_keys.close()
    log(f"    {api.load.rate:,.0f} req/s; server log in {api.server.log_path}")
    profile = profile_summary(profiler, args.seconds) if profiler is not None else None
    return api, overload, profile


def profile_summary(profiler: Profiler, seconds: float) -> dict[str, Any] | None:
    profile = summarize_profile(profiler.path, Profiler.RATE, seconds)
    if profile is None:
        log(f"write_throughput: no py-spy samples in {profiler.path}; see {profiler.log_path}")
    else:
        profile["pg_activity"] = profiler.activity.report()
    return profile


def store_batches(command: str, base: str) -> dict[str, Any]:
    if command in ("register", "rename"):
        return commit_batches(base)
    # noop, floor and healthz write nothing
    return {"events": 0, "transactions": 0, "events_per_transaction": None}


def check_errors(api: ApiRun) -> None:
    """Exit 2 when too many requests failed: the figures would be meaningless."""
    load = api.load
    if load.ok == 0 or load.error_ratio > MAX_ERROR_RATIO:
        fail(
            f"{load.error_count} of {load.ok + load.error_count} API "
            f"requests were not 2xx ({load.error_ratio:.2%} > {MAX_ERROR_RATIO:.0%}): "
            f"{dict(load.errors)}; samples: {load.sample_errors}\n"
            "--- write API log (tail) ---\n" + api.server.log_tail(SERVER_LOG_LINES)
        )


def main() -> None:
    args = parse_arguments()
    out = args.out or Path(tempfile.mkdtemp(prefix="strata-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    base = args.pg.rstrip("/")

    raw_window, api_window = Window(), Window()
    raw = measure_raw(args, base, raw_window)
    api, overload, profile = measure_api(args, base, out, api_window)
    api_cpu = api_window.usage(api.server.process.pid)

    batches = store_batches(args.command, base)
    report = build_report(args, raw, raw_window.usage(), api, api_cpu, batches, profile)
    report["overload"] = overload
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
        print_overload(report)
    check_errors(api)


if __name__ == "__main__":
    main()
