"""The report of bench/write_throughput.py: one JSON document, or a table."""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import loadgen
from bench_host import ms, source_digest
from proc_cpu import print_cpu
from pyspy_stacks import print_rows
from write_load import ApiRun
from write_raw import RawResult

STARTED = time.time()
TARGET_RATIO = 0.5
SERVER_PACKAGES = ("write_api", "runtime", "eventlog", "domain")


def per_request_ms(cpu: dict[str, Any] | None, party: str, requests: int) -> float | None:
    """CPU ms of `party` per request over the window, when both are known."""
    if not cpu or not requests:
        return None
    return round(1000 * float(cpu["cpu_s"].get(party, 0)) / requests, 3)


def raw_part(raw: RawResult, cpu: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "clients": raw.clients,
        "events": raw.events,
        "rate": round(raw.rate, 1),
        "p50_ms": ms(loadgen.percentile(raw.latencies, 50)),
        "p99_ms": ms(loadgen.percentile(raw.latencies, 99)),
        "errors": dict(raw.errors),
        "cpu": cpu,
    }


def api_part(
    args: argparse.Namespace, run: ApiRun, cpu: dict[str, Any] | None, batches: dict[str, Any]
) -> dict[str, Any]:
    api = run.load
    return {
        "command": args.command,
        "workers": args.workers,
        "clients": api.clients,
        "requests_ok": api.ok,
        "rate": round(api.rate, 1),
        "p50_ms": ms(loadgen.percentile(api.latencies, 50)),
        "p99_ms": ms(loadgen.percentile(api.latencies, 99)),
        "per_second": api.per_second[: math.ceil(api.seconds)],
        "errors": dict(api.errors),
        "error_ratio": round(api.error_ratio, 5),
        "warmup_ok": api.warmup_ok,
        "warmup_errors": api.warmup_errors,
        "sample_errors": api.sample_errors,
        "cpu": cpu,
        "server_cpu_ms_per_request": per_request_ms(cpu, "write API", api.ok),
        "client_cpu_ms_per_request": per_request_ms(cpu, "client (bench process)", api.ok),
        "profiled": args.profile,
        "group_commit": batches,
        "connections_per_process": run.connections_per_process,
    }


def build_report(
    args: argparse.Namespace,
    raw: RawResult,
    raw_cpu: dict[str, Any] | None,
    api: ApiRun,
    api_cpu: dict[str, Any] | None,
    batches: dict[str, Any],
    profile: dict[str, Any] | None,
) -> dict[str, Any]:
    ratio = api.load.rate / raw.rate if raw.rate else 0.0
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(STARTED)),
        "server_code": source_digest(SERVER_PACKAGES),
        "seconds": args.seconds,
        "warmup": args.warmup,
        "raw": raw_part(raw, raw_cpu),
        "api": api_part(args, api, api_cpu, batches),
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "profile": profile,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\nwrite throughput, {report['seconds']:g} s measured "
        f"after {report['warmup']:g} s warm-up; started {report['started']}, "
        f"server code {report['server_code']}"
    )
    print_rates(report)
    print_diagnostics(report["raw"], report["api"])
    if report["target_met"]:
        print("TARGET MET")
    else:
        print(f"TARGET MISSED (ratio {report['ratio']:.3f} < {report['target_ratio']})")
    if report["profile"]:
        print_profile(report["profile"])


def print_rates(report: dict[str, Any]) -> None:
    raw, api = report["raw"], report["api"]
    profiled = " (server under py-spy)" if api["profiled"] else ""
    rows = [
        (
            f"(a) raw PG, 1 event/tx, {raw['clients']} threads",
            f"{raw['rate']:,.0f} ev/s",
            f"p50 {raw['p50_ms']:.2f} ms / p99 {raw['p99_ms']:.2f} ms",
        ),
        (
            f"(b) write API {api['command']}, {api['clients']} conns, "
            f"{api['workers']} worker(s){profiled}",
            f"{api['rate']:,.0f} req/s",
            f"p50 {api['p50_ms']:.2f} ms / p99 {api['p99_ms']:.2f} ms",
        ),
        ("ratio b/a", f"{report['ratio']:.3f}", f"target >= {report['target_ratio']}"),
    ]
    width = max(len(r[0]) for r in rows)
    for label, rate, extra in rows:
        print(f"  {label:<{width}}  {rate:>14}  {extra}")


def print_diagnostics(raw: dict[str, Any], api: dict[str, Any]) -> None:
    print(f"  (b) errors: {api['errors'] or 'none'} (ratio {api['error_ratio']:.3%})")
    series = " ".join(str(n) for n in api["per_second"])
    print(f"  (b) 2xx per second over the window: {series}")
    spread = " / ".join(str(n) for n in api["connections_per_process"].values())
    print(f"  (b) keep-alive connections per server process: {spread or 'unknown'}")
    for name, part in (("(a)", raw), ("(b)", api)):
        print_cpu(name, part["cpu"])
    if api["server_cpu_ms_per_request"] is not None:
        print(
            f"  (b) CPU per request: server {api['server_cpu_ms_per_request']:.3f} ms, "
            f"client {api['client_cpu_ms_per_request']:.3f} ms"
        )
    batches = api["group_commit"]
    print(
        f"  (b) users store, whole run: {batches['events']} events in "
        f"{batches['transactions']} transactions ({batches['events_per_transaction']} per tx)"
    )


def print_profile(profile: dict[str, Any]) -> None:
    print(
        f"\nserver profile: {profile['samples']} py-spy samples of GIL-holding threads "
        f"over the measured window; raw stacks in {profile['file']}"
    )
    busy = ", ".join(f"pid {pid} {pct}%" for pid, pct in profile["gil_busy_pct"].items())
    print(f"  GIL held (share of the window): {busy}")
    activity = profile.get("pg_activity")
    if activity:
        print(
            f"  users store connections (pg_stat_activity every 50 ms): inside a transaction "
            f"in {activity['in_transaction_pct']}% of samples, "
            f"{activity['mean_connections_in_transaction']} on average; there:"
        )
        for what, pct in activity["what_they_wait_for_pct"].items():
            print(f"    {pct:5.1f}%  {what}")
    print_rows("  by thread:", profile["threads"])
    print_rows("  by part of the request path:", profile["areas"])
    print_rows("  self time by package (leaf frame):", profile["self_by_package"])
    print_rows(f"  top {len(profile['cumulative'])} cumulative (inclusive):", profile["cumulative"])
    print_rows("  top self:", profile["self"])
