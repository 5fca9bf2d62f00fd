"""Overload: commands above what the stack can project, then a low rate; how far the projector's
lag grows, how it is reported, how soon it recovers, and what read-your-writes reads see.

The stack of bench/fanout_lag.py (same databases, streams and start-up), plus `strata-read-api`.
Phase 1 sends `--rate` commands/s (fanout_lag's customer journeys, open loop) for
`--high-seconds`; phase 2 drops to `--low-rate` for `--low-seconds`. Meanwhile:

- every second the projector's `/metrics` is scraped: the largest `strata_projection_lag_events`
  and `strata_projection_lag_seconds` of all projections (the projector refreshes them every
  5 s, so the series moves in 5 s steps);
- the read models' checkpoints are watched as in fanout_lag (Redis pub/sub, PostgreSQL LISTEN):
  the events projected per second during phase 1 are the stack's projection capacity under this
  load, set against the rate offered (the ratio printed is offered ÷ projected);
- `--reads` reads/s ask the read API for the resource of the newest answered command with its
  `position` (read-your-writes, default wait): latency p50/p99 and status counts per phase; at
  the end the read API's `strata_read_waits_total` by outcome.

Recovery is the time from the drop until (a) every read model has reached the last position
answered before the drop (from the checkpoints) and (b) the largest lag gauge is at most
`--caught-up-seconds` (from /metrics, so up to 5 s late).

    .venv/bin/python bench/overload_lag.py --rate 200 --low-rate 20
    .venv/bin/python bench/overload_lag.py --rate 150 --high-seconds 30 --low-seconds 60 --json

Exit 2 if the stack did not start or the lag never recovered within the low phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
import fanout_lag as fl
import fanout_stack as fs
import loadgen
from bench_auth import authorization, setup_token, trusted_identity
from bench_host import free_port, venv_script
from prometheus_client.parser import text_string_to_metric_families

clock = fl.clock


def start_read_api(config: fl.StackConfig) -> fl.Service:
    port = free_port()
    env = config.env() | {"STRATA_HOST": fl.HOST, "STRATA_READ_API_PORT": str(port)}
    return fl.spawn("read-api", [venv_script("strata-read-api")], env, port, config.log_dir)


async def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A service's /metrics: sample name -> [(labels, value)]."""
    request = loadgen.request_bytes("GET", "/metrics", f"{fl.HOST}:{port}")
    response = await loadgen.fetch(fl.HOST, port, request, 5.0)
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


@dataclass
class Read:
    phase: str
    latency: float
    status: int


@dataclass
class Timeline:
    """What the run saw, on the bench's clock."""

    drop_at: float = 0.0
    lag: list[tuple[float, float, float]] = field(default_factory=list)  # (t, events, seconds)
    reads: list[Read] = field(default_factory=list)
    read_waits: dict[str, float] = field(default_factory=dict)


async def sample_lag(projector_port: int, timeline: Timeline) -> None:
    while True:
        with contextlib.suppress(OSError, TimeoutError, EOFError, ValueError):
            samples = await scrape(projector_port)
            events = max((v for _, v in samples.get("strata_projection_lag_events", [])), default=0)
            seconds = max(
                (v for _, v in samples.get("strata_projection_lag_seconds", [])), default=0
            )
            timeline.lag.append((clock(), events, seconds))
        await asyncio.sleep(1.0)


async def read_your_writes(
    port: int, commands: list[fl.Command], rate: float, timeline: Timeline
) -> None:
    """Open loop: a read of the newest answered command's resource at its position."""
    auth = authorization(setup_token())
    host = f"{fl.HOST}:{port}"
    tasks: set[asyncio.Task[None]] = set()

    async def one(command: fl.Command, phase: str) -> None:
        path = f"{command.resource}?position={command.context}:{command.position}"
        started = clock()
        try:
            response = await loadgen.fetch(
                fl.HOST, port, loadgen.request_bytes("GET", path, host, extra=auth), 30.0
            )
            status = response.status
        except (OSError, TimeoutError, EOFError):
            status = 0
        timeline.reads.append(Read(phase, clock() - started, status))

    while True:
        await asyncio.sleep(1 / rate)
        newest = next((c for c in reversed(commands) if c.position and c.resource), None)
        if newest is not None:
            phase = "high" if not timeline.drop_at else "low"
            task = asyncio.create_task(one(newest, phase))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


async def overload(
    services: dict[str, fl.Service],
    config: fl.StackConfig,
    args: argparse.Namespace,
) -> tuple[list[fl.Command], fl.Observations, Timeline, float]:
    keys = fl.read_models()
    obs = fl.Observations()
    timeline = Timeline()
    watchers = [
        asyncio.create_task(
            fl.watch_redis(config.redis_url, [k for k in keys if k.store == "redis"], obs)
        ),
        asyncio.create_task(
            fl.watch_postgres(config.url("read"), [k for k in keys if k.store == "postgres"], obs)
        ),
    ]
    await asyncio.sleep(0.5)  # subscriptions in place
    run_id = uuid.uuid4().hex[:8]
    high = fl.Driver(services["write-api"].port, args.rate, run_id)
    low = fl.Driver(services["write-api"].port, args.low_rate, run_id + "l")
    commands = high.commands  # the low driver's commands are appended at the drop
    background = [
        asyncio.create_task(sample_lag(services["projector"].port, timeline)),
        asyncio.create_task(
            read_your_writes(services["read-api"].port, commands, args.reads, timeline)
        ),
    ]
    started = clock()
    high_run = asyncio.create_task(high.run(args.high_seconds))
    await asyncio.sleep(args.high_seconds)
    timeline.drop_at = clock()
    low.commands = commands
    await asyncio.gather(high_run, low.run(args.low_seconds))
    for task in background + watchers:
        task.cancel()
    await asyncio.gather(*background, *watchers, return_exceptions=True)
    waits = await scrape(services["read-api"].port)
    timeline.read_waits = {
        labels["outcome"]: value for labels, value in waits.get("strata_read_waits_total", [])
    }
    return commands, obs, timeline, started


def position_at(obs: fl.Observations, key: fl.ModelKey, at: float) -> int:
    reached = [
        p
        for p, t in zip(obs.positions.get(key, []), obs.times.get(key, []), strict=True)
        if t <= at
    ]
    return reached[-1] if reached else 0


def projected_per_second(obs: fl.Observations, start: float, end: float) -> float:
    """Events of all contexts that every read model of their context applied, per second."""
    by_context: dict[str, list[fl.ModelKey]] = {}
    for key in fl.read_models():
        by_context.setdefault(key.context, []).append(key)
    events = sum(
        min(position_at(obs, k, end) - position_at(obs, k, start) for k in models)
        for models in by_context.values()
    )
    return events / (end - start)


def caught_up_at(obs: fl.Observations, commands: list[fl.Command], drop: float) -> float | None:
    """When every read model held the last position answered before the drop."""
    head = Counter[str]()
    for c in commands:
        if c.position and c.answered <= drop:
            head[c.context] = max(head[c.context], c.position)
    times = []
    for key in fl.read_models():
        if head[key.context] == 0:
            continue
        at = obs.reached_at(key, head[key.context])
        if at is None:
            return None
        times.append(at)
    return max(times, default=drop)


def analyse(
    commands: list[fl.Command],
    obs: fl.Observations,
    timeline: Timeline,
    started: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    drop = timeline.drop_at
    high = [c for c in commands if c.scheduled < drop]
    accepted = sum(1 for c in high if c.position) / args.high_seconds
    projected = projected_per_second(obs, started + min(5.0, args.high_seconds / 4), drop)
    peak = max(timeline.lag, key=lambda s: s[1], default=(0.0, 0.0, 0.0))
    peak_seconds = max((s[2] for s in timeline.lag), default=0.0)
    gauge_ok = next(
        (t for t, _, seconds in timeline.lag if t > drop and seconds <= args.caught_up_seconds),
        None,
    )
    backlog = caught_up_at(obs, commands, drop)
    reads = {}
    for phase in ("high", "low"):
        of_phase = [r for r in timeline.reads if r.phase == phase]
        reads[phase] = {
            **fl.percentiles([r.latency for r in of_phase]),
            "statuses": dict(Counter(r.status for r in of_phase)),
        }
    return {
        "offered_per_s": args.rate,
        "accepted_per_s": round(accepted, 1),
        "projected_events_per_s": round(projected, 1),
        "offered_over_projected": round(args.rate / projected, 2) if projected else None,
        "errors": dict(Counter(str(c.error)[:40] for c in commands if c.error)),
        "lag_peak_events": peak[1],
        "lag_peak_seconds": round(peak_seconds, 2),
        "lag_peak_at_s": round(peak[0] - started, 1),
        "recovered_backlog_s": None if backlog is None else round(backlog - drop, 2),
        "recovered_gauge_s": None if gauge_ok is None else round(gauge_ok - drop, 2),
        "lag_series": [(round(t - started, 1), e, round(s, 2)) for t, e, s in timeline.lag],
        "reads": reads,
        "read_waits_total": timeline.read_waits,
    }


def print_report(result: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\noverload: {args.rate:g} commands/s for {args.high_seconds:g} s, then "
        f"{args.low_rate:g}/s for {args.low_seconds:g} s; reads {args.reads:g}/s"
    )
    print(
        f"  phase 1: accepted {result['accepted_per_s']}/s, projected "
        f"{result['projected_events_per_s']} events/s (offered ÷ projected = "
        f"{result['offered_over_projected']}); errors {result['errors'] or 'none'}"
    )
    print(
        f"  lag peak (projector /metrics): {result['lag_peak_events']:g} events, "
        f"{result['lag_peak_seconds']} s (at t={result['lag_peak_at_s']} s)"
    )
    print(
        f"  recovery after the drop: backlog applied in {result['recovered_backlog_s']} s "
        f"(checkpoints); lag gauge <= {args.caught_up_seconds:g} s after "
        f"{result['recovered_gauge_s']} s"
    )
    series = " ".join(f"{t:g}:{e:g}/{s:g}" for t, e, s in result["lag_series"][::5])
    print(f"  lag every 5 s (t: events/seconds): {series}")
    for phase, stats in result["reads"].items():
        print(
            f"  read-your-writes reads, {phase}: n {stats['n']}, p50 {stats['p50_ms']} / p99 "
            f"{stats['p99_ms']} / max {stats['max_ms']} ms, statuses {stats['statuses']}"
        )
    print(f"  read API strata_read_waits_total: {result['read_waits_total']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="phase 1 commands/s")
    parser.add_argument("--high-seconds", type=float, default=40.0)
    parser.add_argument("--low-rate", type=float, default=20.0, help="phase 2 commands/s")
    parser.add_argument("--low-seconds", type=float, default=60.0)
    parser.add_argument("--reads", type=float, default=10.0, help="read-your-writes reads/s")
    parser.add_argument("--caught-up-seconds", type=float, default=1.0, help="lag gauge bound")
    fs.add_stack_arguments(parser)
    args = parser.parse_args()
    if args.redis_db == 0:
        sys.exit("overload_lag: use a Redis DB other than 0 (it is flushed)")
    if min(args.rate, args.low_rate, args.reads, args.high_seconds, args.low_seconds) <= 0:
        sys.exit("overload_lag: rates and durations must be positive")
    out = args.out or Path(tempfile.mkdtemp(prefix="strata-overload-"))
    out.mkdir(parents=True, exist_ok=True)
    namespace = f"benchovl{uuid.uuid4().hex[:8]}"
    with trusted_identity() as jwks_url:
        config = fl.StackConfig(
            pg=args.pg.rstrip("/"),
            redis_url=f"{args.redis.rstrip('/')}/{args.redis_db}",
            nats_url=args.nats,
            namespace=namespace,
            jwks_url=jwks_url,
            log_dir=out,
            extra_env=dict(item.split("=", 1) for item in args.env),
        )
        result = run_stack(config, args)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_report(result, args)
        print(f"  logs: {out}")
    if result["recovered_backlog_s"] is None:
        sys.exit(2)


def run_stack(config: fl.StackConfig, args: argparse.Namespace) -> dict[str, Any]:
    roles = (*fl.CONTEXTS, "read")
    fl.recreate_databases(config, roles)
    fl.flush_redis(config.redis_url)
    services: dict[str, fl.Service] = {}
    try:
        fl.start_simulators(config, services)
        services["write-api"] = fl.start_write_api(config)
        for context in fl.CONTEXTS:
            services[f"relay-{context}"] = fl.start_relay(config, context)
        services["projector"] = fl.start_projector(config)
        services["read-api"] = start_read_api(config)
        for service in services.values():
            fl.wait_ready(service)
        fl.log(
            f"stack ready; {args.rate:g}/s for {args.high_seconds:g} s, "
            f"then {args.low_rate:g}/s ..."
        )
        run = loadgen.run(lambda: overload(services, config, args))
        return analyse(*run, args)
    except RuntimeError as error:
        fl.log(f"overload_lag: FAILED: {error}")
        for service in services.values():
            fl.log(f"--- {service.name} log (tail) ---\n{service.log_tail()}")
        sys.exit(2)
    finally:
        for service in reversed(list(services.values())):
            fl.stop_service(service)
        if not args.keep:
            loadgen.run(lambda: fl.delete_streams(args.nats, fl.stream_names(config.namespace)))
            fl.drop_databases(config, roles)
            fl.flush_redis(config.redis_url)


if __name__ == "__main__":
    main()
