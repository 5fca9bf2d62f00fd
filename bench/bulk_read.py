"""Reading a context's whole log as envelopes: the live path (`select_envelopes`, page by page)
against the bulk one (`eventlog.bulk_read.envelope_pages`), alternately in one process, over an
existing PostgreSQL event store (e.g. one `bench/rebuild.py` filled and left behind).

    .venv/bin/python bench/bulk_read.py postgresql://postgres@127.0.0.1:5432/strata_bench_rb_orders
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contexts.registered import REGISTRY
from contexts.settings import Settings
from eventlog.bulk_read import envelope_pages
from eventlog.envelope import EnvelopeSource, envelope_source
from eventlog.stores import build_services
from runtime.settings import database_url_field


def live(source: EnvelopeSource, context: str, until: int, page: int) -> int:
    after, read = 0, 0
    while after < until and (envelopes := source.select_envelopes(context, after, page)):
        after, read = envelopes[-1].position, read + len(envelopes)
    return read


def bulk(source: EnvelopeSource, context: str, until: int, page: int) -> int:
    return sum(len(envelopes) for envelopes in envelope_pages(source, context, 0, until, page))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the event store's database")
    parser.add_argument("--context", default="orders")
    parser.add_argument("--page", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # Stack settings name every context's store; only this context's application is built.
    settings = Settings(**{database_url_field(name): args.url for name in REGISTRY.names})
    services = build_services(settings, REGISTRY.only(args.context))
    try:
        source = envelope_source(services[args.context].recorder)
        until = services[args.context].recorder.max_notification_id() or 0
        paths: dict[str, Callable[[EnvelopeSource, str, int, int], int]] = {
            "live": live,
            "bulk": bulk,
        }
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, read in paths.items():
                started = time.perf_counter()
                events = read(source, args.context, until, args.page)
                seconds[name].append(time.perf_counter() - started)
        for name, runs in seconds.items():
            median = statistics.median(runs)
            print(f"{name}: {events:,} events, median {median:.2f} s, {events / median:,.0f} ev/s")
    finally:
        services.close()


if __name__ == "__main__":
    main()
