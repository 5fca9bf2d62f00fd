"""Projector throughput (and memory) against raw JetStream consumption, in one run.

Fill: N synthetic but valid envelopes (default 200,000) in fresh namespaced context streams
(`<NS>_ES_USERS`, `<NS>_ES_ORDERS`, created with the relay's own stream settings), published
directly through the relay's bounded publish window (256 in flight) with the relay's headers
(`Nats-Msg-Id`, chained `Nats-Expected-Last-Msg-Id`, `Strata-Position`, ...) and subjects. The mix
is what customer journeys write, with consistent aggregates: one user registered per two orders;
each order created, given 1-3 lines, placed (total = sum of the lines) and paid (amount = total);
~64 orders in progress at once, so their events interleave. Positions are consecutive per context.

(a) raw: one durable pull consumer per stream, `fetch(1000)`, ack each message, no work.
(a') the projector's layout with no work: one consumer per context, fetch(batch size), one
    ack per batch.
(b) projector: `strata-projector` as a subprocess on a fresh read database
    (`strata_bench_proj_read`) and a flushed Redis DB (`--redis-db`, default 9), timed from spawn
    until every projection's checkpoint (Redis keys and `rm_checkpoints`, polled every 20 ms)
    has reached the last position of its context. Also reported: the rate from the first
    checkpoint move (startup excluded), and when each projection finished.

Prints both rates (events/s, each event counted once) and the ratio b/a (target >= 0.5), plus the
CPU each process used during (b).

`--memory`: 1,000,000 events (unless `--events` says otherwise) and the projector's RSS (VmRSS of
/proc/<pid>/status) sampled each time another 50,000 events are applied by every projection;
reports min/max/last and whether the samples after warm-up (`--warmup-events`, default
200,000) stay within 10 % (target: flat within 10 %).

    .venv/bin/python bench/projector_throughput.py                     # 200k events
    .venv/bin/python bench/projector_throughput.py --events 50000      # a short check
    .venv/bin/python bench/projector_throughput.py --memory            # 1M events, RSS
    .venv/bin/python bench/projector_throughput.py --profile           # py-spy on the projector

Exit 0 whether or not a target is met; 2 if the projector did not start or did not finish within
`--timeout` seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import fanout_stack as fs
import loadgen
from bench_host import log
from projector_fill import fill_streams
from projector_raw import raw_consume, raw_fanout
from projector_report import Measured, build_report, print_report
from projector_run import RSS_EVERY, run_projector, verify

from contexts.settings import Settings

DB_PREFIX = "strata_bench_proj"
"""Databases of its own: fanout_lag.py's may be in use at the same time."""


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=None, help="default 200k; 1M with --memory")
    parser.add_argument("--memory", action="store_true", help="sample the projector's RSS")
    parser.add_argument("--warmup-events", type=int, default=200_000)
    parser.add_argument("--rss-every", type=int, default=RSS_EVERY, help="events per RSS sample")
    parser.add_argument("--batch-size", type=int, default=None, help="STRATA_PROJECTOR_BATCH_SIZE")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for (b)")
    parser.add_argument("--profile", action="store_true", help="py-spy on the projector")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument(
        "--db-prefix",
        default=DB_PREFIX,
        help="read databases' name prefix (another run of this bench on the host uses the default)",
    )
    fs.add_stack_arguments(parser)
    args = parser.parse_args()
    if args.redis_db == 0:
        sys.exit("projector_throughput: use a Redis DB other than 0 (it is flushed)")
    return args


def measure(
    args: argparse.Namespace, config: fs.StackConfig, settings: Settings, events: int
) -> tuple[Measured | None, fs.Service | None]:
    """The fill, (a), (a') and (b) on fresh streams, databases and Redis DB, removed after
    (unless `--keep`); None when (b) failed."""
    roles = (*fs.CONTEXTS, "read")
    service: fs.Service | None = None
    batch_size = args.batch_size or settings.projector_batch_size
    try:
        log(f"fill: {events:,} envelopes into {', '.join(fs.stream_names(config.namespace))} ...")
        fill = loadgen.run(lambda: fill_streams(settings, events))
        log(f"    {fill.rate:,.0f} msg/s")
        log("(a) raw durable pull consumer, fetch(1000), ack each ...")
        raw = loadgen.run(lambda: raw_consume(settings, fill.per_context))
        log(f"    {raw['rate']:,.0f} ev/s")
        log(f"(a') the projector's layout, no work: fetch({batch_size}), ack per batch ...")
        fan = loadgen.run(lambda: raw_fanout(settings, fill.per_context, batch_size))
        log(f"    {fan['rate']:,.0f} ev/s")
        log(f"(b) strata-projector: databases {args.db_prefix}_*, Redis {config.redis_url} ...")
        fs.recreate_databases(config, roles)
        fs.flush_redis(config.redis_url)
        run, service = run_projector(
            config,
            fill.per_context,
            timeout=args.timeout,
            profile_seconds=args.profile_seconds if args.profile else 0,
            rss_every=args.rss_every,
        )
        checks = verify(config, fill.expected)
    except RuntimeError as error:
        log(f"projector_throughput: FAILED: {error}")
        return None, service
    finally:
        if service is not None:
            fs.stop_service(service)
        if not args.keep:
            loadgen.run(lambda: fs.delete_streams(args.nats, fs.stream_names(config.namespace)))
            fs.drop_databases(config, roles)
            fs.flush_redis(config.redis_url)
    return Measured(fill, raw, fan, run, checks), service


def main() -> None:
    args = parse_arguments()
    events = args.events or (1_000_000 if args.memory else 200_000)
    config = fs.config_of_arguments(args, "proj")
    if args.batch_size:
        config.extra_env["STRATA_PROJECTOR_BATCH_SIZE"] = str(args.batch_size)
    settings = Settings(stream_namespace=config.namespace, nats_url=args.nats)
    measured, service = measure(args, config, settings, events)
    if measured is None or measured.run.done is None:
        if service is not None:
            log(f"--- projector log (tail) ---\n{service.log_tail()}")
        sys.exit(2)

    batch_size = args.batch_size or settings.projector_batch_size
    report = build_report(args, config.namespace, batch_size, config.log_dir, measured)
    if args.save:
        args.save.write_text(json.dumps(report, indent=2, default=str))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report)
        print(f"  logs: {config.log_dir}")


if __name__ == "__main__":
    main()
