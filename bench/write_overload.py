"""(c) of bench/write_throughput.py, `--overload`: the write API driven open-loop at twice the
rate (b) measured; what the admitted commands got and how fast the refused ones were told."""

from __future__ import annotations

import gc
import os
from typing import Any

import loadgen
from bench_host import HOST, log, ms
from fanout_stack import Service
from proc_cpu import Window, print_cpu

OVERLOAD_FACTOR = 2.0
OVERLOAD_P99_TARGET_MS = 50.0
REFUSAL_TARGET_MS = 5.0
CLIENT_NICENESS = -10


def raise_priority() -> int | None:
    """Schedule this process (the open-loop client) before the server on a busy host, when
    allowed: a client waiting for a core sends late, and the lag would count as the server's
    latency. The client needs ~0.1 core. Returns the niceness to restore."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, CLIENT_NICENESS)
    except PermissionError:
        return None
    return before


def overloaded(
    server: Service, requests: loadgen.RequestFactory, rate: float, seconds: float
) -> dict[str, Any]:
    """(c) Open-loop arrivals at `rate` (twice the capacity (b) measured): what the admitted
    commands got, and how fast the refused ones were told."""
    log(f"(c) open loop at {rate:,.0f} req/s for {seconds:g} s ...")
    raised = raise_priority()
    gc.freeze()  # a full collection over everything (a) and (b) left would stall the client
    window = Window()
    window("start")
    result = loadgen.run_open_loop(HOST, server.port, requests, rate=rate, seconds=seconds)
    window("end")
    gc.unfreeze()
    if raised is not None:
        os.setpriority(os.PRIO_PROCESS, 0, raised)
    return {
        "offered_rate": round(rate, 1),
        **open_loop_figures(result),
        "client_priority_raised": raised is not None,
        **latency_ms("client_send_lag", result.send_lags),
        **latency_ms("new_connection_lag", result.new_connection_lags),
        "cpu": window.usage(server.process.pid),
        "p99_target_ms": OVERLOAD_P99_TARGET_MS,
        "refusal_target_ms": REFUSAL_TARGET_MS,
    }


def latency_ms(name: str, latencies: list[float]) -> dict[str, float]:
    """`<name>_p50_ms` and `<name>_p99_ms` of latencies in seconds."""
    return {
        f"{name}_p50_ms": ms(loadgen.percentile(latencies, 50)),
        f"{name}_p99_ms": ms(loadgen.percentile(latencies, 99)),
    }


def open_loop_figures(result: loadgen.OpenLoopResult) -> dict[str, Any]:
    ok, refused = result.ok_latencies, result.refused_latencies
    return {
        "sent": result.sent,
        "goodput": round(result.goodput, 1),
        "admitted": len(ok),
        **latency_ms("admitted", ok),
        "refused": len(refused),
        **latency_ms("refused", refused),
        "other_errors": dict(result.errors),
        "connections_opened": result.connections,
    }


def print_overload(report: dict[str, Any]) -> None:
    o = report["overload"]
    if not o:
        return
    print(
        f"\n(c) open loop at {o['offered_rate']:,.0f} req/s ({OVERLOAD_FACTOR:g}x (b)), "
        f"{o['sent']} sent on {o['connections_opened']} connections:"
    )
    print(
        f"  goodput {o['goodput']:,.0f} req/s; admitted {o['admitted']}: "
        f"p50 {o['admitted_p50_ms']:.2f} ms / p99 {o['admitted_p99_ms']:.2f} ms "
        f"(target p99 <= {o['p99_target_ms']:g} ms)"
    )
    print(
        f"  refused (503) {o['refused']}: p50 {o['refused_p50_ms']:.2f} ms / "
        f"p99 {o['refused_p99_ms']:.2f} ms (target <= {o['refusal_target_ms']:g} ms); "
        f"other errors: {o['other_errors'] or 'none'}"
    )
    print(
        f"  arrival to request written (in both latencies): on a kept connection "
        f"p50 {o['client_send_lag_p50_ms']:.2f} ms / p99 {o['client_send_lag_p99_ms']:.2f} ms, "
        f"on a new one p50 {o['new_connection_lag_p50_ms']:.2f} ms / "
        f"p99 {o['new_connection_lag_p99_ms']:.2f} ms; client scheduled first "
        f"(nice {CLIENT_NICENESS}): {'yes' if o['client_priority_raised'] else 'no, not permitted'}"
    )
    print_cpu("(c)", o["cpu"])
