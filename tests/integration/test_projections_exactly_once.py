"""Exactly once in effect: duplicates, redeliveries and replays change nothing, and a clean
re-projection from the log equals the live read models (the oracle of design invariant 4)."""

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from projections.catchup import project_log
from projections.engine import Engine
from projections.model import Message
from tests.support.dumps import checksum, differences, dump_read_models
from tests.support.projections import (
    FAST,
    READ_SIDES,
    ReadSide,
    Scenario,
    event_stores,
    project,
    read_side,
    run_scenario,
)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with event_stores(tmp_path_factory.mktemp("stores")) as services:
        yield run_scenario(services)


@pytest.fixture(params=READ_SIDES)
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadSide]:
    with read_side(request.param, tmp_path) as built:
        yield built


def _checkpoints(side: ReadSide) -> dict[tuple[str, str], Any]:
    return {
        (t.projection.name, context): t.checkpoint(context)
        for t in side.targets
        for context in t.projection.contexts
    }


def test_a_replayed_log_and_duplicate_batches_change_nothing(
    side: ReadSide, scenario: Scenario
) -> None:
    project(side, scenario)
    before, checkpoints = dump_read_models(side.targets), _checkpoints(side)

    for engine in side.engines():
        for context in engine.projection.contexts:
            messages = scenario.messages(context)
            outcome = engine.handle(context, messages)
            assert (outcome.applied, outcome.parked, outcome.duplicates) == (0, 0, len(messages))
            for start in range(0, len(messages), 3):
                engine.handle(context, messages[start : start + 3])

    assert dump_read_models(side.targets) == before
    assert _checkpoints(side) == checkpoints


@pytest.mark.parametrize("seed", [1, 2])
def test_overlapping_shuffled_redeliveries_equal_one_clean_pass(
    side: ReadSide, scenario: Scenario, tmp_path: Path, seed: int
) -> None:
    """Batches that re-deliver part of the previous one, in any order inside a batch."""
    rng = random.Random(seed)
    for engine in side.engines():
        for context in engine.projection.contexts:
            messages = scenario.messages(context)
            start = 0
            while start < len(messages):
                end = min(len(messages), start + rng.randint(1, 6))
                batch = messages[max(0, start - rng.randint(0, 4)) : end]
                rng.shuffle(batch)
                engine.handle(context, batch)
                start = end

    with read_side(side.kind, tmp_path, name="clean") as clean:
        project(clean, scenario)
        assert dump_read_models(side.targets) == dump_read_models(clean.targets)


def test_the_checkpoint_keeps_the_stream_sequence_of_the_last_message(
    side: ReadSide, scenario: Scenario
) -> None:
    target = side.target("orders")
    messages = [
        Message(m.envelope, stream_seq=100 + i) for i, m in enumerate(scenario.messages("orders"))
    ]
    Engine(target, FAST).handle("orders", messages)

    checkpoint = target.checkpoint("orders")
    assert (checkpoint.position, checkpoint.stream_seq) == (
        messages[-1].position,
        messages[-1].stream_seq,
    )


def test_a_clean_reprojection_from_the_log_equals_the_live_read_models(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    """The kill -9 oracle: fold the log into empty stores and compare canonical dumps."""
    rng = random.Random(7)
    for engine in side.engines():  # live: small batches with redeliveries
        for context in engine.projection.contexts:
            messages = scenario.messages(context)
            for start in range(0, len(messages), 4):
                engine.handle(context, messages[max(0, start - rng.randint(0, 3)) : start + 4])
    until = {c: scenario.envelopes(c)[-1].position for c in ("users", "orders")}

    with read_side(side.kind, tmp_path, name="rebuilt") as rebuilt:
        project_log(
            {c: scenario.source(c) for c in ("users", "orders")}, rebuilt.targets, until=until
        )
        live, again = dump_read_models(side.targets), dump_read_models(rebuilt.targets)

    assert again == live, differences(live, again)
    assert checksum(again) == checksum(live)
    assert set(live) == {
        "user_profiles",
        "user_stats",
        "top_spenders",
        "users_directory",
        "orders",
        "daily_sales",
        "payments",
        "shipments",
        "fulfilments",
    }


def test_a_reprojection_stopped_short_differs_from_live(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    """The oracle can fail: one event fewer gives another checksum."""
    project(side, scenario)
    until = {c: scenario.envelopes(c)[-1].position for c in ("users", "orders")}
    until["orders"] -= 1

    with read_side(side.kind, tmp_path, name="short") as short:
        project_log({c: scenario.source(c) for c in until}, short.targets, until=until)
        assert checksum(dump_read_models(short.targets)) != checksum(dump_read_models(side.targets))


@pytest.mark.postgres
def test_every_store_holds_the_same_read_models(scenario: Scenario, tmp_path: Path) -> None:
    """Redis (Lua) and the SQL executor, PostgreSQL and SQLite agree, value for value."""
    dumps = []
    for kind in ("sqlite", "postgres", "stack"):
        with read_side(kind, tmp_path, name=f"same_{kind}") as built:
            project(built, scenario, batch=5)
            dumps.append(dump_read_models(built.targets))
    assert dumps[0] == dumps[1] == dumps[2]
