"""The process metrics a service's registry gets (`runtime.process_metrics`)."""

import gc

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from runtime.process_metrics import show_process_metrics


def _sample(registry: CollectorRegistry, name: str) -> float:
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not shown")


def test_a_registry_shows_the_process_and_the_pause_of_each_collection() -> None:
    registry = CollectorRegistry()
    show_process_metrics(registry)
    counted = 'python_gc_pause_seconds_count{generation="2"}'
    before = _sample(registry, counted)

    gc.collect()

    assert _sample(registry, counted) == before + 1
    assert _sample(registry, 'python_gc_pause_seconds_bucket{generation="2",le="+Inf"}') == (
        before + 1
    )
    assert _sample(registry, "process_cpu_seconds_total") > 0
    assert _sample(registry, "python_gc_frozen_objects") == gc.get_freeze_count()


def test_the_default_registry_keeps_its_own_collectors_and_takes_the_pauses_once() -> None:
    show_process_metrics(REGISTRY)
    show_process_metrics(REGISTRY)  # a second app of the process (the BFFs use this registry)

    shown = generate_latest(REGISTRY).decode().splitlines()

    assert shown.count("# TYPE process_cpu_seconds_total counter") == 1
    assert shown.count("# TYPE python_gc_pause_seconds histogram") == 1
