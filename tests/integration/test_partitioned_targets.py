"""Targets bound to a partition lease (projector workers, projections/workers.py) on a real
PostgreSQL and Redis: each partition projected on its own gives the same read models as one
projector over the whole log; a batch under an older epoch than the partition's last writer
is refused and writes nothing; switching between the single projector and workers (either
way) applies nothing twice; positions name each partition's checkpoint."""

from pathlib import Path
from typing import Any

import pytest

from eventlog.envelope import PARTITIONS
from projections.engine import Engine, Target
from projections.leases import Lease
from projections.model import Apply, Message
from projections.models import all_projections
from projections.status import projection_statuses
from projections.targets import target_at
from readmodels.catalog import ORDERS, USER_PROFILES
from readmodels.partition_checkpoints import (
    LeaseLost,
    partition_slot,
    read_all_positions,
    redis_all_positions,
)
from tests.support.dumps import dump_read_models
from tests.support.projections import (
    FAST,
    ReadSide,
    Scenario,
    expected_dump,
    project,
    read_models_of,
)

pytestmark = [pytest.mark.postgres]


def leased_targets(side: ReadSide, lease: Lease) -> list[Target]:
    """A worker's targets for one partition: SQL models in PostgreSQL, documents in Redis."""
    targets = [
        target_at(p, p.version, side.db, side.redis, side.layout, lease) for p in all_projections()
    ]
    for target in targets:
        target.prepare()
    return targets


def in_partition(scenario: Scenario, context: str, partition: int) -> list[Message]:
    return [m for m in scenario.messages(context) if m.envelope.partition == partition]


def project_partition(
    side: ReadSide, scenario: Scenario, lease: Lease, *, upto: int | None = None
) -> None:
    for target in leased_targets(side, lease):
        engine = Engine(target, FAST)
        for context in target.projection.contexts:
            messages = in_partition(scenario, context, lease.partition)
            if upto is not None:
                messages = [m for m in messages if m.position <= upto]
            for start in range(0, len(messages), 3):  # small batches: many commits
                engine.handle(context, messages[start : start + 3])


def test_partitions_projected_apart_equal_one_projector(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    # Last partition first: partitions run in any order relative to each other.
    for partition in reversed(range(PARTITIONS)):
        project_partition(side, scenario, Lease(partition, epoch=1))
    assert dump_read_models(side.targets) == expected_dump(scenario, tmp_path)
    assert_positions_per_partition(side, scenario)


def assert_positions_per_partition(side: ReadSide, scenario: Scenario) -> None:
    assert side.redis is not None and side.layout is not None
    with side.db.transaction(write=False) as tx:
        sql = read_all_positions(tx, [ORDERS])
    documents = redis_all_positions(side.redis, side.layout, [USER_PROFILES])
    for positions, model, context in (
        (sql, "orders", "orders"),
        (documents, "user_profiles", "users"),
    ):
        lasts = dict.fromkeys(range(PARTITIONS), 0)
        for message in scenario.messages(context):
            lasts[message.envelope.partition] = message.position
        for partition, last in lasts.items():
            assert positions[(model, partition_slot(context, partition))] == last
        assert positions[(model, context)] == min(lasts.values())


def test_an_older_epoch_is_refused_and_writes_nothing(side: ReadSide, scenario: Scenario) -> None:
    partition = next(m.envelope.partition for m in scenario.messages("orders"))
    messages = in_partition(scenario, "orders", partition)
    assert len(messages) >= 2
    heir = {t.projection.name: t for t in leased_targets(side, Lease(partition, epoch=2))}
    stale = {t.projection.name: t for t in leased_targets(side, Lease(partition, epoch=1))}
    for name in ("orders", "user_stats"):  # PostgreSQL, Redis
        heir[name].commit("orders", [Apply(messages[0])])
        before = _state(side, heir[name])
        with pytest.raises(LeaseLost):
            Engine(stale[name], FAST).handle("orders", messages)
        assert _state(side, heir[name]) == before, name  # rolled back: rows and checkpoint
        assert heir[name].checkpoint("orders").position == messages[0].position
        # The holder goes on from its checkpoint: the rest once, nothing twice.
        Engine(heir[name], FAST).handle("orders", messages)
        assert heir[name].checkpoint("orders").position == messages[-1].position


def _state(side: ReadSide, target: Target) -> Any:
    return dump_read_models([target]), target.checkpoint("orders")


def test_switching_modes_applies_nothing_twice(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    """Single projector over the first half, workers over everything (what the single one
    applied is skipped), then the single projector again (what workers applied is skipped)."""
    half = max(m.position for m in scenario.messages("orders")) // 2
    for engine in side.engines():
        for context in engine.projection.contexts:
            engine.handle(context, [m for m in scenario.messages(context) if m.position <= half])
    for partition in range(PARTITIONS):
        project_partition(side, scenario, Lease(partition, epoch=1), upto=half * 3 // 2)
    project(side, scenario, batch=4)
    assert dump_read_models(side.targets) == expected_dump(scenario, tmp_path)


def test_replay_projections_reports_what_every_partition_applied(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    """`replay projections` with workers: the position is the last one before the first event
    a partition has not applied, in PostgreSQL and in Redis alike."""
    models = read_models_of(side, scenario, tmp_path)
    messages = scenario.messages("orders")
    held_back = messages[len(messages) // 2]  # its partition stops just before it
    for partition in range(PARTITIONS):
        upto = held_back.position - 1 if partition == held_back.envelope.partition else None
        project_partition(side, scenario, Lease(partition, epoch=1), upto=upto)

    def reported() -> dict[str, tuple[int, int]]:
        found = {}
        for status in projection_statuses(models):
            for lag in status.contexts:
                if lag.context == "orders":
                    found[status.name] = (lag.position, lag.lag_events)
        return found

    head = messages[-1].position
    wanted = (held_back.position - 1, head - held_back.position + 1)
    assert reported() == {
        "user_stats": wanted,
        "top_spenders": wanted,
        "orders": wanted,
        "daily_sales": wanted,
    }
    project_partition(side, scenario, Lease(held_back.envelope.partition, epoch=1))
    assert set(reported().values()) == {(head, 0)}
