"""Fail-fast latency with an open circuit breaker, against the raw cost of a call, in one run.

A payment provider client (`contexts.payments.provider.HttpPaymentProvider`, with the breaker
and retry policy of `runtime.resilience`) points at a port nobody listens on; its first call is
refused and opens the breaker (threshold 1). Then, one call at a time (or from `--threads`
threads at once), `--samples` times each:

(a) raw: a no-op Python function call, timed the same way (the floor of any call);
(b) breaker: `CircuitBreaker.call` of a no-op while open (raises `BreakerOpen`);
(c) client: `HttpPaymentProvider.authorize` while open: the retry policy, the breaker and the
    translation to `ProviderUnavailable`, which is what a participant's worker waits for.

Prints p50/p99/max of each in microseconds, the ratios (b)/(a) and (c)/(a) at p99, and whether
p99 of (c) meets the target (<= 5 ms). Checks that no request was sent while open. Exit code 0
whether or not the target is met.

    .venv/bin/python bench/breaker_fail_fast.py
    .venv/bin/python bench/breaker_fail_fast.py --samples 100000 --threads 8 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry

from contexts.payments.ports import ProviderUnavailable
from contexts.payments.provider import HttpPaymentProvider
from runtime.resilience import (
    BreakerOpen,
    BreakerState,
    CircuitBreaker,
    RetryPolicy,
    breaker_metrics,
    http_client,
)

TARGET_P99_MS = 5.0


def unused_port() -> int:
    """A port nobody listens on: every connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(
    call: Callable[[], object], samples: int, errors: tuple[type[Exception], ...]
) -> list[float]:
    """Microseconds per call, one sample per call."""
    clock = time.perf_counter_ns
    spent = []
    for _ in range(samples):
        started = clock()
        with contextlib.suppress(*errors):
            call()
        spent.append((clock() - started) / 1000)
    return spent


def in_threads(
    call: Callable[[], object], samples: int, threads: int, errors: tuple[type[Exception], ...]
) -> list[float]:
    if threads == 1:
        return timed(call, samples, errors)
    share = samples // threads
    with ThreadPoolExecutor(threads) as pool:
        parts = pool.map(lambda _: timed(call, share, errors), range(threads))
        return [value for part in parts for value in part]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_us": round(statistics.median(values), 2),
        "p99_us": round(percentile(values, 0.99), 2),
        "max_us": round(max(values), 2),
    }


def noop() -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20_000, help="calls measured per part")
    parser.add_argument("--threads", type=int, default=1, help="threads calling at once")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    breaker = CircuitBreaker(
        "payment-provider",
        failure_threshold=1,
        recovery_seconds=3600,
        metrics=breaker_metrics(CollectorRegistry()),
    )
    sent: list[object] = []
    with http_client(1.0) as client:
        client.event_hooks = {"request": [sent.append]}
        provider = HttpPaymentProvider(
            f"http://127.0.0.1:{unused_port()}", client, breaker, RetryPolicy(attempts=3)
        )
        with contextlib.suppress(ProviderUnavailable):
            provider.authorize("bench:authorize", Decimal("1.00"), "EUR")
        if breaker.state is not BreakerState.OPEN:
            sys.exit("the breaker did not open")

        def through_client() -> None:
            provider.authorize("bench:authorize", Decimal("1.00"), "EUR")

        for call, errors in ((noop, ()), (through_client, (ProviderUnavailable,))):
            timed(call, 1000, errors)  # warm-up
        raw = in_threads(noop, args.samples, args.threads, ())
        open_breaker = in_threads(
            lambda: breaker.call(noop), args.samples, args.threads, (BreakerOpen,)
        )
        client_call = in_threads(through_client, args.samples, args.threads, (ProviderUnavailable,))
    if len(sent) != 1:
        sys.exit(f"{len(sent)} requests were sent; only the first, which opened it, should be")
    report(args, summary(raw), summary(open_breaker), summary(client_call))


def report(
    args: argparse.Namespace, raw: dict[str, float], brk: dict[str, float], cli: dict[str, float]
) -> None:
    met = cli["p99_us"] / 1000 <= TARGET_P99_MS
    result: dict[str, Any] = {
        "samples": args.samples,
        "threads": args.threads,
        "raw_noop": raw,
        "breaker_open": brk,
        "client_open": cli,
        "ratio_breaker_to_raw_p99": round(brk["p99_us"] / raw["p99_us"], 1),
        "ratio_client_to_raw_p99": round(cli["p99_us"] / raw["p99_us"], 1),
        "target_p99_ms": TARGET_P99_MS,
        "target_met": met,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"samples {args.samples} per part, {args.threads} thread(s)")
    for name, part in (("(a) raw no-op", raw), ("(b) breaker open", brk), ("(c) client open", cli)):
        print(
            f"{name:18} p50 {part['p50_us']:9.2f} us  p99 {part['p99_us']:9.2f} us"
            f"  max {part['max_us']:10.2f} us"
        )
    print(f"ratio p99 (b)/(a): {result['ratio_breaker_to_raw_p99']}")
    print(f"ratio p99 (c)/(a): {result['ratio_client_to_raw_p99']}")
    verdict = "TARGET MET" if met else "TARGET MISSED"
    print(f"{verdict}: p99 (c) {cli['p99_us'] / 1000:.3f} ms (target <= {TARGET_P99_MS} ms)")


if __name__ == "__main__":
    main()
