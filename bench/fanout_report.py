"""Analysis and printing of a fan-out lag run."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from bench_host import ms, source_digest
from fanout_cpu import BURNER, PG_OTHERS
from fanout_rawops import IDLE_SECONDS
from fanout_run import StackRun
from fanout_stack import SIMULATORS, ModelKey, percentiles, read_models

TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0
MAX_ERROR_RATIO = 0.01


def analyse(run: StackRun, raw: dict[str, Any]) -> dict[str, Any]:
    keys = read_models()
    by_context: dict[str, dict[str, list[ModelKey]]] = defaultdict(lambda: defaultdict(list))
    for key in keys:
        by_context[key.context][key.store].append(key)
    measured = [c for c in run.commands if run.measure_from <= c.scheduled < run.measure_to]
    ok = [c for c in measured if c.position]
    failed = [c for c in measured if not c.position]
    lags: dict[str, list[float]] = defaultdict(list)
    per_context: dict[str, list[float]] = defaultdict(list)
    per_model: dict[str, list[float]] = defaultdict(list)
    ahead = Counter[str]()
    invisible = Counter[str]()
    series: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    since_decided: dict[str, list[float]] = defaultdict(list)
    rows = []
    for command in ok:
        published = run.obs.published[command.context].get(command.position)
        decided = run.obs.decided[command.context].get(command.position)
        if published is not None:
            lags["jetstream"].append(max(0.0, published - command.answered))
        else:
            invisible["jetstream"] += 1
        row = {
            "kind": command.kind,
            "context": command.context,
            "position": command.position,
            "scheduled": round(command.scheduled - run.measure_from, 6),
            "answered": round(command.answered - run.measure_from, 6),
            "decided": None if decided is None else round(decided - run.measure_from, 6),
            "jetstream": None if published is None else round(published - run.measure_from, 6),
        }
        if decided is not None:
            since_decided["response"].append(command.answered - decided)
            if published is not None:
                since_decided["jetstream"].append(published - decided)
        for store in ("redis", "postgres"):
            seen = []
            for key in by_context[command.context][store]:
                at = run.obs.reached_at(key, command.position)
                if at is None:
                    invisible[key.label] += 1
                    continue
                seen.append(at)
                per_model[key.label].append(max(0.0, at - command.answered))
            if len(seen) != len(by_context[command.context][store]) or not seen:
                invisible[store] += 1
                continue
            row[store] = round(max(seen) - run.measure_from, 6)
            if decided is not None:
                since_decided[store].append(max(seen) - decided)
            lag = max(seen) - command.answered
            if lag < 0:
                ahead[store] += 1
            lag = max(0.0, lag)
            lags[store].append(lag)
            per_context[f"{store}/{command.context}"].append(lag)
            series[store][int((command.answered - run.measure_from) // 10)].append(lag)
        rows.append(row)
    http = [c.answered - c.scheduled for c in ok]
    floor = raw["tail_lag"]

    def ratio(stats: dict[str, Any], q: str) -> float | None:
        if stats[q] is None or not floor[q]:
            return None
        share: float = stats[q] / floor[q]
        return round(share, 1)

    stores = {}
    for store in ("redis", "postgres", "jetstream"):
        stats = percentiles(lags[store])
        stats["ratio_to_raw_p50"] = ratio(stats, "p50_ms")
        stats["ratio_to_raw_p99"] = ratio(stats, "p99_ms")
        stores[store] = stats
    targets = {
        store: {
            "p50_met": stores[store]["p50_ms"] is not None
            and stores[store]["p50_ms"] <= TARGET_P50_MS,
            "p99_met": stores[store]["p99_ms"] is not None
            and stores[store]["p99_ms"] <= TARGET_P99_MS,
        }
        for store in ("redis", "postgres")
    }
    return {
        "commands": len(measured),
        "commands_ok": len(ok),
        "errors": Counter(str(c.error) for c in failed),
        "error_ratio": round(len(failed) / len(measured), 5) if measured else None,
        "mix": Counter(c.kind for c in ok),
        "rate_achieved": round(len(ok) / (run.measure_to - run.measure_from), 1),
        "events_relayed": events_relayed(run),
        "http_latency": percentiles(http),
        "lag": stores,
        "since_event_timestamp": {k: percentiles(v) for k, v in since_decided.items()},
        "lag_per_context": {k: percentiles(v) for k, v in sorted(per_context.items())},
        "lag_per_model": {k: percentiles(v) for k, v in sorted(per_model.items())},
        "lag_p99_per_10s": {
            store: [ms(percentiles_value(v, 99)) for _, v in sorted(buckets.items())]
            for store, buckets in series.items()
        },
        "busy_per_10s": [
            {"machine_busy_cores": b, "stack_cores": st}
            for _, (b, st) in sorted(
                (k, v) for k, v in run.busy.items() if 0 <= k < len(series.get("redis", {}))
            )
        ],
        "visible_before_response": dict(ahead),
        "never_visible": dict(invisible),
        "drained": run.drained,
        "notifications": dict(run.obs.notifications),
        "redis_wakeups_without_move": run.obs.foreign_redis,
        "targets": targets,
        "rows": rows,
    }


def events_relayed(run: StackRun) -> dict[str, int]:
    """Per context, the events whose relayed message went through NATS in the measured window:
    the clients' commands' own events and those the sagas and reactions they started wrote."""
    return {
        context: sum(run.measure_from <= at < run.measure_to for at in seen.values())
        for context, seen in sorted(run.obs.published.items())
    }


OUTSIDE_STACK = (
    "bench client",
    "py-spy",
    "other",
    "exited processes",
    BURNER,
    PG_OTHERS,
    *SIMULATORS,
)
TARGET_CPU_RATIO = 5.0
SHARED_SERVERS = ("nats-server", "redis-server")
"""Servers whose CPU the raw figure takes whole (PostgreSQL is counted by backend)."""


def stack_cpu_ms(cpu: dict[str, Any], result: dict[str, Any]) -> dict[str, float]:
    """Milliseconds of CPU per answered command of each strata service and server."""
    rate = result["rate_achieved"]
    if not rate:
        return {}
    return {k: 1000 * v / rate for k, v in cpu["cores"].items() if k not in OUTSIDE_STACK}


def cpu_per_command(cpu: dict[str, Any], result: dict[str, Any]) -> str:
    """Milliseconds of CPU per answered command, whole stack and per strata service."""
    per = stack_cpu_ms(cpu, result)
    if not per:
        return "(no commands)"
    parts = ", ".join(f"{k} {v:.2f}" for k, v in per.items())
    return f"{sum(per.values()):.2f} ms for the stack ({parts})"


def cpu_comparison(
    cpu: dict[str, Any] | None, result: dict[str, Any], raw: dict[str, Any]
) -> dict[str, Any] | None:
    """The stack's CPU per command against the CPU of the raw operations it needs: those of
    its own event (the issue's figure), and those of every event it causes, saga steps
    included (`events_per_command` times the raw operations of one event)."""
    stack = stack_cpu_ms(cpu, result) if cpu else {}
    raw_ms = (raw.get("operations") or {}).get("total_ms")
    if not stack or not raw_ms:
        return None
    stack_ms = sum(stack.values())
    ratio = stack_ms / raw_ms
    events = sum(result["events_relayed"].values())
    events_per_command = events / result["commands_ok"] if result["commands_ok"] else 0.0
    raw_caused_ms = raw_ms * events_per_command
    return {
        "stack_ms": round(stack_ms, 3),
        "raw_ms": raw_ms,
        "ratio": round(ratio, 1),
        "target_met": ratio <= TARGET_CPU_RATIO,
        "events_per_command": round(events_per_command, 2),
        "raw_caused_ms": round(raw_caused_ms, 3),
        "ratio_to_caused": round(stack_ms / raw_caused_ms, 1) if raw_caused_ms else None,
    }


def print_capacity(report: dict[str, Any]) -> None:
    capacity = report.get("capacity")
    if capacity:
        h = capacity["http_latency"]
        print(
            f"  capacity: {capacity['clients']} closed-loop connections for "
            f"{capacity['seconds']:g} s: {capacity['commands_ok']} commands ok, errors "
            f"{capacity['errors'] or 'none'}; written {capacity['write_rate']}/s (HTTP p50 "
            f"{h['p50_ms']} / p99 {h['p99_ms']} ms), visible in every read model at "
            f"{capacity['visible_rate']}/s (drained {capacity['drain_s']} s after the last "
            f"answer), the {capacity['orders_placed']} placed orders' fulfilments ended "
            f"{capacity['sagas_ended_s']} s after it (machine busy "
            f"{capacity['machine_busy_until_sagas_ended']:.0%}) -> capacity "
            f"{capacity['capacity']}/s sustained, lag run at half: {report['rate']:g}/s"
        )
    if report.get("burner"):
        cores = (report["cpu"] or {}).get("cores", {}).get(BURNER) or 0.0
        short = " (less than a core: the scheduler shared the host)" if cores < 0.9 else ""
        print(
            f"  CPU burner: one busy-loop process from the warm-up to the end of the drain, "
            f"{cores:.2f} cores in the measured window{short}"
        )


def print_cpu(report: dict[str, Any]) -> None:
    cpu, result = report["cpu"], report["result"]
    operations = report["raw"].get("operations") or {}
    if operations.get("ms_per_operation"):
        parts = ", ".join(f"{k} {v:.3f}" for k, v in operations["ms_per_operation"].items())
        print(
            f"  (a') raw operations of one command ({operations['operations']} at "
            f"{operations['achieved_rate']}/s: INSERT+COMMIT, publish+ack, fetch+ack, "
            f"2 upserts + checkpoint in one transaction, 4 Redis commands in one pipeline): "
            f"{operations['total_ms']:.3f} ms of CPU ({parts}); machine busy "
            f"{operations['cpu']['machine_busy_pct']}%"
        )
        idle = ", ".join(f"{k} {v:.3f}" for k, v in operations["idle_cores"].items())
        shared = sum(v for k, v in operations["idle_cores"].items() if k in SHARED_SERVERS)
        others_ms = 1000 * shared / operations["achieved_rate"]
        print(
            f"      shared servers' cores in {IDLE_SECONDS:g} s without our load: {idle} "
            f"(nats-server + redis-server: other sessions' ~{others_ms:.3f} ms per operation "
            "inside the figure above, if their load stayed so)"
        )
    if cpu:
        cores = ", ".join(f"{k} {v:.2f}" for k, v in cpu["cores"].items())
        print(f"  CPU cores used in the window: {cores}; machine busy {cpu['machine_busy_pct']}%")
        print(f"  CPU per command: {cpu_per_command(cpu, result)}")
    comparison = report.get("cpu_per_command")
    if comparison:
        print(
            f"  CPU per command, stack / raw operations: {comparison['stack_ms']:.2f} / "
            f"{comparison['raw_ms']:.3f} ms = {comparison['ratio']} "
            f"({'<=' if comparison['target_met'] else '>'} {TARGET_CPU_RATIO:g}: target "
            f"{'met' if comparison['target_met'] else 'missed'})"
        )
        print(
            f"  CPU per command, stack / raw operations of the "
            f"{comparison['events_per_command']} events it causes (sagas included; "
            f"{dict(result['events_relayed'])} relayed in the window): "
            f"{comparison['stack_ms']:.2f} / {comparison['raw_caused_ms']:.3f} ms = "
            f"{comparison['ratio_to_caused']}"
        )


def percentiles_value(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))]


def code_digest() -> str:
    return source_digest(("write_api", "runtime", "eventlog", "domain", "projections"))


def print_report(report: dict[str, Any]) -> None:
    raw, result = report["raw"], report["result"]
    print(
        f"\nfan-out lag, {report['rate']:g} commands/s open loop, {report['seconds']:g} s measured "
        f"after {report['warmup']:g} s warm-up; started {report['started']}, code "
        f"{report['code']}, namespace {report['namespace']}"
    )
    t = raw["tail_lag"]
    print(
        f"  (a) raw JetStream tail lag at {raw['rate']:g} msg/s ({raw['messages']} msgs, "
        f"fetch(256)): p50 {t['p50_ms']} / p99 {t['p99_ms']} / max {t['max_ms']} ms; "
        f"publish->ack p50 {raw['publish_to_ack']['p50_ms']} ms"
    )
    print_capacity(report)
    print(
        f"  (b) {result['commands_ok']} commands ok of {result['commands']} "
        f"({result['rate_achieved']}/s), errors {dict(result['errors']) or 'none'}; "
        f"mix {dict(result['mix'])}"
    )
    h = result["http_latency"]
    print(f"      HTTP scheduled->response p50 {h['p50_ms']} / p99 {h['p99_ms']} ms")
    print("      commit (HTTP response) -> ...          p50      p99      max   x raw p50 / p99")
    names = {
        "jetstream": "in JetStream (relay)",
        "redis": "visible in Redis read models",
        "postgres": "visible in PostgreSQL read models",
    }
    for store, label in names.items():
        s = result["lag"][store]
        if s["n"] == 0:
            print(f"      {label:<36} (none)")
            continue
        print(
            f"      {label:<36} {s['p50_ms']:>7.2f} {s['p99_ms']:>8.2f} {s['max_ms']:>8.2f}"
            f"   {s['ratio_to_raw_p50']} / {s['ratio_to_raw_p99']}"
        )
    decided = result["since_event_timestamp"]
    if decided:
        print("      from the event's own timestamp (write API clock at decision, before commit):")
        for name in ("response", "jetstream", "redis", "postgres"):
            s = decided.get(name)
            if s and s["n"]:
                print(
                    f"        -> {name:<31} {s['p50_ms']:>7.2f} {s['p99_ms']:>8.2f} "
                    f"{s['max_ms']:>8.2f}"
                )
    print("      per context and per read model (commit -> visible):")
    for name, s in result["lag_per_context"].items():
        print(f"        {name:<34} {s['p50_ms']:>7.2f} {s['p99_ms']:>8.2f} {s['max_ms']:>8.2f}")
    for name, s in result["lag_per_model"].items():
        print(f"        {name:<34} {s['p50_ms']:>7.2f} {s['p99_ms']:>8.2f} {s['max_ms']:>8.2f}")
    for store, values in result["lag_p99_per_10s"].items():
        print(f"      {store} p99 per 10 s: {' '.join(f'{v:.1f}' for v in values)} ms")
    if result["busy_per_10s"]:
        print(
            "      machine busy / strata services cores per 10 s: "
            + " ".join(
                f"{b['machine_busy_cores']:.2f}/{b['stack_cores']:.2f}"
                for b in result["busy_per_10s"]
            )
        )
    if result["visible_before_response"]:
        print(f"      visible before the response arrived: {result['visible_before_response']}")
    if result["never_visible"]:
        print(f"      NEVER VISIBLE: {result['never_visible']}")
    print(
        f"      notifications received: {result['notifications']}; Redis wake-ups with no "
        f"checkpoint move: {result['redis_wakeups_without_move']}"
    )
    print_cpu(report)
    verdicts = []
    for store, target in result["targets"].items():
        s = result["lag"][store]
        verdicts.append(
            f"{store}: p50 {s['p50_ms']} ms {'<=' if target['p50_met'] else '>'} "
            f"{TARGET_P50_MS:g}, p99 {s['p99_ms']} ms {'<=' if target['p99_met'] else '>'} "
            f"{TARGET_P99_MS:g}"
        )
    met = all(t["p50_met"] and t["p99_met"] for t in result["targets"].values())
    print(("TARGET MET: " if met else "TARGET MISSED: ") + "; ".join(verdicts))
    for name, profile in (report.get("profiles") or {}).items():
        if not profile:
            print(f"\n{name}: no profile samples")
            continue
        busy = ", ".join(f"{v}%" for v in profile["gil_busy_pct"].values())
        print(f"\n{name} profile: {profile['samples']} samples, GIL held {busy}; {profile['file']}")
        print("  self time by package:")
        for row in profile["self_by_package"][:10]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")
        print("  top cumulative:")
        for row in profile["cumulative"][:25]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")
        print("  top self:")
        for row in profile["self"][:12]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")
