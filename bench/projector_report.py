"""The report of bench/projector_throughput.py: one JSON document, or lines of text."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fanout_report import code_digest
from projector_fill import Fill
from projector_run import ProjectorRun, filled_models
from pyspy_stacks import print_rows

STARTED = time.time()
TARGET_RATIO = 0.5
MEMORY_TOLERANCE = 0.10


@dataclass
class Measured:
    """What one run measured: the fill, the raw floors (a) and (a'), the projector (b) and the
    read models' checks."""

    fill: Fill
    raw: dict[str, Any]
    fan: dict[str, Any]
    run: ProjectorRun
    checks: dict[str, Any]


def projector_part(fill: Fill, run: ProjectorRun, done: float) -> dict[str, Any]:
    keys = filled_models(fill.per_context)
    rate = fill.events / done
    projector_cpu = None
    if run.cpu and "projector" in run.cpu["cores"]:
        projector_cpu = round(
            1000 * run.cpu["cores"]["projector"] * run.cpu["wall_s"] / fill.events, 3
        )
    return {
        "projections": len(keys),
        "deliveries": sum(fill.per_context[k.context] for k in keys),
        "seconds": round(done, 3),
        "rate": round(rate, 1),
        "first_move_s": round(run.first_move or 0, 3),
        "rate_after_start": round(rate_after_start(fill, run, done), 1),
        "finished": run.finished,
        "cpu": run.cpu,
        "projector_cpu_ms_per_event": projector_cpu,
        "rss": run.rss,
        "rss_series": run.rss_series,
        "progress_series": run.progress_series,
        "profile": run.profile,
    }


def rate_after_start(fill: Fill, run: ProjectorRun, done: float) -> float:
    """Events per second from the first checkpoint move (the projector's startup excluded)."""
    return fill.events / (done - run.first_move) if run.first_move else fill.events / done


def build_report(
    args: argparse.Namespace, namespace: str, batch_size: int, out: Path, measured: Measured
) -> dict[str, Any]:
    fill, raw, fan, run = measured.fill, measured.raw, measured.fan, measured.run
    assert run.done is not None
    rate = fill.events / run.done
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(STARTED)),
        "code": code_digest(),
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
        "projector": projector_part(fill, run, run.done),
        "ratio": round(rate / raw["rate"], 3),
        "ratio_after_start": round(rate_after_start(fill, run, run.done) / raw["rate"], 3),
        "target_ratio": TARGET_RATIO,
        "target_met": rate / raw["rate"] >= TARGET_RATIO,
        "checks": measured.checks,
        "rss_every": args.rss_every,
        "logs": str(out),
    }
    if args.memory:
        report["memory"] = memory_verdict(run.rss, args.warmup_events)
    return report


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
    if report.get("memory"):
        print_memory(report["memory"], report["rss_every"], proj["rss"])
    print_checks(report)
    if proj.get("profile"):
        print_profile(proj["profile"])


def print_memory(memory: dict[str, Any], rss_every: int, samples: list[dict[str, Any]]) -> None:
    print(
        f"  RSS every {rss_every:,} events: "
        + " ".join(f"{s['rss_kib'] / 1024:.0f}" if s["rss_kib"] else "?" for s in samples)
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


def print_checks(report: dict[str, Any]) -> None:
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


def print_profile(profile: dict[str, Any]) -> None:
    busy = ", ".join(f"{v}%" for v in profile["gil_busy_pct"].values())
    print(f"\nprojector profile: {profile['samples']} samples, GIL held {busy}; {profile['file']}")
    print_rows("  self time by package:", profile["self_by_package"][:12])
    print_rows("  top cumulative:", profile["cumulative"][:30])
    print_rows("  top self:", profile["self"][:15])
