"""What every service shows on its `/metrics` about its process, beside its own metrics.

The collectors of prometheus_client's default registry (`process_cpu_seconds_total`,
`process_resident_memory_bytes`, `process_open_fds`, `python_info`, `python_gc_*`), which the
services' own registries lack; how long each garbage collection held the process,
`python_gc_pause_seconds` by generation; and `python_gc_frozen_objects`, the objects kept out of
them. A full collection stops everything the process does; `runtime.server_process` keeps the
startup objects out of them, and the tail of the histogram shows what is left.
"""

import bisect
import contextlib
import gc
import itertools
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
GENERATIONS = 3


class _Pauses(Collector):
    """A `gc.callbacks` entry keeping each collection's duration, by generation, in plain
    counters: it takes no lock, as a prometheus_client metric would (a collection may start
    while this very thread holds that lock: it would wait for itself)."""

    def __init__(self) -> None:
        self._started = 0.0
        self._counts = [[0] * (len(PAUSE_BUCKETS) + 1) for _ in range(GENERATIONS)]
        self._sums = [0.0] * GENERATIONS

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info["generation"]
        self._counts[generation][bisect.bisect_left(PAUSE_BUCKETS, pause)] += 1
        self._sums[generation] += pause

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = self._family()
        bounds = [*map(str, PAUSE_BUCKETS), "+Inf"]
        for generation in range(GENERATIONS):
            cumulative = itertools.accumulate(self._counts[generation])
            buckets = list(zip(bounds, cumulative, strict=True))
            family.add_metric([str(generation)], buckets, self._sums[generation])
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield self._family()

    @staticmethod
    def _family() -> HistogramMetricFamily:
        return HistogramMetricFamily(
            "python_gc_pause_seconds",
            "How long each garbage collection held the process, by generation (2: a full one).",
            labels=["generation"],
        )


class _FrozenObjects(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "python_gc_frozen_objects",
            "Objects kept out of garbage collections (gc.freeze() at the process's start).",
            value=gc.get_freeze_count(),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self.collect()


_PAUSES = _Pauses()
_FROZEN = _FrozenObjects()


def show_process_metrics(registry: CollectorRegistry) -> None:
    """Add the process's metrics to `registry`, a registry of the caller's own made once (the
    default registry, which has the collectors already, gets the pauses, once however often it
    is asked), and time the process's collections."""
    if registry is not REGISTRY:
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
    with contextlib.suppress(ValueError):  # the default registry, asked again
        registry.register(_PAUSES)
        registry.register(_FROZEN)
    if _PAUSES not in gc.callbacks:
        gc.callbacks.append(_PAUSES)
