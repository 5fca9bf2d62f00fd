"""Dead letters when a read model is projected again over positions it has seen (a Redis that
lost data, a backfill, a rebuild): an event retried before that fails again is parked again,
never dropped; an event a person skipped stays skipped, live and in a rebuild alike."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from projections.admin import DeadLetterAdmin
from projections.engine import Engine, Outcome, Target
from projections.rebuild import Rebuilder
from projections.rebuild_targets import ReadModels
from projections.redis_target import RedisDocumentTarget
from projections.sql_target import SqlProjectionTarget, SqlTarget
from projections.verify import compare
from readmodels.checkpoints import Checkpoint, write_checkpoint
from tests.support.dumps import dump_read_models
from tests.support.poison import (
    POISON_SKU,
    PoisonedOrders,
    PoisonedUserStats,
    poison_scenario,
)
from tests.support.projections import FAST, READ_SIDES, ReadSide, Scenario, read_side

NAMES = ("orders", "user_stats")


@pytest.fixture(params=READ_SIDES)
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadSide]:
    with read_side(request.param, tmp_path) as built:
        yield built.with_projections([PoisonedOrders(), PoisonedUserStats()])


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    with poison_scenario(tmp_path) as made:
        yield made


def _project(side: ReadSide, scenario: Scenario) -> list[Outcome]:
    """A projector's engines (new: they remember nothing) over the whole `orders` log."""
    messages = scenario.messages("orders")
    return [Engine(target, FAST).handle("orders", messages) for target in side.targets]


def _poison(side: ReadSide, poisoned: bool) -> None:
    for target in side.targets:
        target.projection.poisoned = poisoned  # type: ignore[attr-defined]


def _lose_the_models(side: ReadSide) -> None:
    """Every model loses its data and checkpoints, as a Redis restarted empty does; the dead
    letters (in the SQL read database) stay. The projector then starts again from position 0."""
    for target in side.targets:
        p = target.projection
        if isinstance(target, RedisDocumentTarget):
            target.redis.delete(*target.redis.keys(target.layout.prefix(p.name, p.version) + "*"))
            target.rewind("orders")
            continue
        assert isinstance(target, SqlTarget)
        with target.db.transaction() as tx:
            if isinstance(target, SqlProjectionTarget):
                for table in target.tables:
                    tx.execute(f"DELETE FROM {table.name}")
            else:
                for generic in ("rm_hashes", "rm_sorted_sets"):
                    tx.execute(
                        f"DELETE FROM {generic} WHERE projection = ? AND version = ?",
                        [p.name, p.version],
                    )
            write_checkpoint(tx, p.name, p.version, "orders", Checkpoint())


def _clean_dump(side: ReadSide, scenario: Scenario, tmp_path: Path) -> dict[str, object]:
    with read_side(side.kind, tmp_path, name="clean") as empty:
        clean = empty.with_projections([PoisonedOrders(), PoisonedUserStats()])
        _poison(clean, False)
        _project(clean, scenario)
        return dump_read_models(clean.targets)


def test_a_retried_event_failing_again_on_a_re_projection_is_parked_again(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    _project(side, scenario)
    admin = DeadLetterAdmin(side.db, side.targets)
    _poison(side, False)
    for name in NAMES:
        head, *blocked = admin.listing(projection=name)
        assert len(admin.retry(head.id).retried) == 1 + len(blocked)
    assert admin.listing() == []

    _poison(side, True)
    _lose_the_models(side)
    outcomes = _project(side, scenario)

    for name, outcome in zip(NAMES, outcomes, strict=True):
        letters = admin.listing(projection=name)
        head, *blocked = letters
        assert outcome.parked == len(letters)
        assert {dl.status for dl in letters} == {"parked"}
        assert (head.error, head.attempts) == ("ValueError: poisoned line", 2)
        assert head.envelope.data["sku"] == POISON_SKU
        assert {dl.error for dl in blocked} == {f"blocked by position {head.position}"}
        assert {dl.aggregate_id for dl in letters} == {scenario.orders["bad"]}
    assert admin.listing(status="retried") == []

    _poison(side, False)  # retried once more, it is not lost: the models equal a clean fold
    for name in NAMES:
        admin.retry(admin.listing(projection=name)[0].id)
    assert dump_read_models(side.targets) == _clean_dump(side, scenario, tmp_path)


def _skip_the_poison(side: ReadSide, scenario: Scenario) -> list[int]:
    """Project, skip the poison event of each model and retry the events behind it; the ids of
    the skipped dead letters."""
    _project(side, scenario)
    admin = DeadLetterAdmin(side.db, side.targets)
    skipped = []
    for name in NAMES:
        head, second, *_ = admin.listing(projection=name)
        skipped.append(admin.skip(head.id).id)
        assert admin.retry(second.id).failed is None
    assert admin.listing() == []
    return skipped


def test_a_skipped_event_stays_skipped_on_a_re_projection(
    side: ReadSide, scenario: Scenario
) -> None:
    skipped = _skip_the_poison(side, scenario)
    before = dump_read_models(side.targets)

    _poison(side, False)  # it would apply now: the person's decision still holds
    _lose_the_models(side)
    outcomes = _project(side, scenario)

    assert [(o.skipped, o.parked) for o in outcomes] == [(1, 0)] * len(NAMES)
    assert dump_read_models(side.targets) == before
    admin = DeadLetterAdmin(side.db, side.targets)
    assert [admin.show(letter_id).status for letter_id in skipped] == ["skipped"] * len(NAMES)
    assert admin.listing() == []
    for target in side.targets:
        assert target.checkpoint("orders").position == scenario.messages("orders")[-1].position


@pytest.mark.parametrize("name", NAMES)
def test_a_rebuild_skips_what_was_skipped_live_and_equals_live(
    side: ReadSide, scenario: Scenario, tmp_path: Path, name: str
) -> None:
    _skip_the_poison(side, scenario)
    models = ReadModels(
        side.db,
        {"orders": scenario.source("orders"), "users": scenario.source("users")},
        lambda context: scenario.messages(context)[-1].position,
        side.redis,
        side.layout,
        lock_dir=tmp_path / "locks",
    )

    # The rebuild runs the projection's own code, which does not raise on the poison line.
    result = Rebuilder(models, policy=FAST).rebuild(name)

    assert result.swapped
    live: Target = next(t for t in side.targets if t.projection.name == name)
    assert compare(live, models.target(live.projection, 2)).equal
    admin = DeadLetterAdmin(side.db, side.targets)
    [carried] = admin.listing(projection=name, status="skipped")[1:]
    assert (carried.version, carried.envelope.data["sku"]) == (2, POISON_SKU)
    assert admin.listing(projection=name) == []
