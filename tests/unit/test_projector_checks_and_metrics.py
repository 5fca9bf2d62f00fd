"""The projector process: the settings it refuses to run with, and its lag and per-version
metrics."""

import math
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest

from contexts.registered import REGISTRY
from contexts.settings import CONTEXTS, Settings
from projections.engine import Engine, Outcome
from projections.metrics import ProjectorMetrics
from projections.models import UserStats
from projections.stack import stack_problem
from readmodels.checkpoints import Checkpoint
from tests.support.projection_doubles import FakeTarget, T

EVENT_STORES = {
    f"{name}_database_url": f"postgresql://u@db:5432/strata_{name}" for name in CONTEXTS
}
STACK = {
    **EVENT_STORES,
    "read_database_url": "postgresql://u@db:5432/strata_read",
    "redis_url": "redis://cache:6379/0",
}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (dict.fromkeys(EVENT_STORES), "runs in the stack mode"),
        ({"read_database_url": None}, "STRATA_READ_DATABASE_URL"),
        ({"redis_url": None}, "STRATA_REDIS_URL"),
        ({"read_database_url": "postgresql://x@db/strata_orders"}, "orders event store"),
    ],
)
def test_settings_the_projector_cannot_run_with(changes: dict[str, object], problem: str) -> None:
    found = stack_problem(Settings(**{**STACK, **changes}))  # type: ignore[arg-type]
    assert found is not None and problem in found
    assert "\n" not in found


def test_in_the_embedded_mode_the_projector_names_every_event_store_url_it_needs() -> None:
    found = stack_problem(Settings(**{**STACK, **dict.fromkeys(EVENT_STORES)}))  # type: ignore[arg-type]
    assert found is not None
    for context in REGISTRY:
        assert context.database_url_variable in found


def test_stack_settings_with_a_read_database_of_its_own_are_fine() -> None:
    assert stack_problem(Settings(**STACK)) is None  # type: ignore[arg-type]


def test_lag_is_zero_when_caught_up_and_the_age_of_the_first_unapplied_event_when_behind() -> None:
    class Runner:
        engine = Engine(FakeTarget({}))
        context = "orders"
        attached = True
        checkpoint = Checkpoint(40)
        last_event_time: datetime | None = T

    metrics = ProjectorMetrics()
    runner = Runner()
    labels = {"projection": "user_stats", "version": "1", "context": "orders"}

    metrics.observe_lag(runner, 40, now=T + timedelta(seconds=30))  # type: ignore[arg-type]
    assert metrics.registry.get_sample_value("strata_projection_lag_events", labels) == 0
    assert metrics.registry.get_sample_value("strata_projection_lag_seconds", labels) == 0

    metrics.observe_lag(runner, 45, now=T + timedelta(seconds=30))  # type: ignore[arg-type]
    assert metrics.registry.get_sample_value("strata_projection_lag_events", labels) == 5
    assert metrics.registry.get_sample_value("strata_projection_lag_seconds", labels) == 30

    oldest_unapplied = T + timedelta(seconds=20)
    metrics.observe_lag(runner, 45, oldest_unapplied, now=T + timedelta(seconds=30))  # type: ignore[arg-type]
    assert metrics.registry.get_sample_value("strata_projection_lag_seconds", labels) == 10

    runner.last_event_time = None
    metrics.observe_lag(runner, 45)  # type: ignore[arg-type]
    unknown = metrics.registry.get_sample_value("strata_projection_lag_seconds", labels)
    assert unknown is not None and math.isnan(unknown)


def test_a_retired_versions_series_go_and_a_standby_exports_no_consumer_gauges() -> None:
    """Issue 7, item 10: after a rebuild's swap to v2, nothing is exported for v1 any more."""
    v1 = UserStats()
    v2 = v1.at_version(2)

    class Runner:
        engine = SimpleNamespace(projection=v1)
        context = "orders"
        attached = True
        checkpoint = Checkpoint(375)
        last_event_time: datetime | None = T

    metrics, runner = ProjectorMetrics(), Runner()

    def sample(name: str, version: int, **labels: str) -> float | None:
        labels = {"projection": "user_stats", "version": str(version), **labels}
        return metrics.registry.get_sample_value(name, labels)

    metrics.observe_batch(runner, Outcome(applied=3), 0.01)  # type: ignore[arg-type]
    metrics.observe_lag(runner, 375)  # type: ignore[arg-type]
    metrics.observe_dead_letters([v1], {("user_stats", 1): 2})
    assert sample("strata_projection_checkpoint_position", 1, context="orders") == 375
    assert sample("strata_projection_dead_letters", 1) == 2

    runner.engine.projection = v2  # the swap: the consumer now writes v2
    metrics.observe_lag(runner, 380)  # type: ignore[arg-type]
    metrics.observe_dead_letters([v2], {})

    for name in (
        "strata_projection_checkpoint_position",
        "strata_projection_lag_events",
        "strata_projection_consumer_attached",
        "strata_projection_events_applied_total",
    ):
        assert sample(name, 1, context="orders") is None, name
    assert sample("strata_projection_batch_seconds_count", 1) is None
    assert sample("strata_projection_dead_letters", 1) is None
    assert sample("strata_projection_checkpoint_position", 2, context="orders") == 375
    assert sample("strata_projection_dead_letters", 2) == 0

    metrics.forget_consumers()  # back to standby
    assert sample("strata_projection_checkpoint_position", 2, context="orders") is None
    assert sample("strata_projection_consumer_attached", 2, context="orders") is None
