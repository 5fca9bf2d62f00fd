"""Blue/green rebuilds (projections.rebuild): rebuild equals live, for every read model and
every kind of store; the swap, resuming, audits as of a time, retiring (design invariant 4)."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.stores import Services
from projections.catchup import project_log
from projections.models import all_projections
from projections.rebuild import Rebuilder
from projections.rebuild_reports import Busy, UnknownProjection, VerifyFailed
from projections.targets import following_targets, sql_targets
from projections.verify import compare, fingerprint
from readmodels.sql import SQLiteDatabase
from readmodels.versions import active_versions, records
from tests.support.dumps import checksum, dump_read_models
from tests.support.projections import (
    FAST,
    READ_SIDES,
    ReadSide,
    Scenario,
    read_models_of,
    read_side,
)

NAMES = [p.name for p in all_projections()]


@pytest.fixture(params=READ_SIDES)
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadSide]:
    with read_side(request.param, tmp_path) as made:
        yield made


def live_targets(side: ReadSide) -> list:  # type: ignore[type-arg]
    targets = following_targets(side.db, side.redis, layout=side.layout)
    for target in targets:
        target.prepare()
    return targets


def project_live(side: ReadSide, scenario: Scenario) -> list:  # type: ignore[type-arg]
    targets = live_targets(side)
    project_log({c: scenario.source(c) for c in ("users", "orders")}, targets, policy=FAST)
    return targets


def more_commands(services: Services) -> None:
    ctx = CommandContext(correlation_id="more")
    cid = (
        services.application(UsersService)
        .register(ctx, "Cy", f"cy-{datetime.now(UTC).timestamp()}@x.io")
        .id
    )
    services.application(OrdersService).create_order(ctx, cid, "EUR")


@pytest.mark.parametrize("name", NAMES)
def test_a_rebuild_equals_live_and_becomes_active(
    side: ReadSide, scenario: Scenario, tmp_path: Path, name: str
) -> None:
    targets = project_live(side, scenario)
    before = checksum(dump_read_models(targets))
    result = Rebuilder(read_models_of(side, scenario, tmp_path), policy=FAST).rebuild(name)

    assert result.swapped
    assert result.plan.version == 2
    with side.db.transaction(write=False) as tx:
        assert active_versions(tx)[name][0] == 2
        assert {r.version: r.status for r in records(tx, name)} == {1: "previous", 2: "active"}
    following = live_targets(side)  # now following version 2
    assert checksum(dump_read_models(following)) == before
    rebuilt = next(t for t in following if t.projection.name == name)
    assert rebuilt.projection.version == 2
    assert result.checksum == fingerprint(rebuilt)
    old = Rebuilder(read_models_of(side, scenario, tmp_path)).models.target(rebuilt.projection, 1)
    assert compare(old, rebuilt).equal


def test_projectors_follow_the_swap_without_a_gap(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    targets = project_live(side, scenario)
    Rebuilder(read_models_of(side, scenario, tmp_path), policy=FAST).rebuild("orders")
    more_commands(scenario.services)
    project_log({c: scenario.source(c) for c in ("users", "orders")}, targets, policy=FAST)

    expected = read_side_copy(side, scenario, tmp_path)
    assert dump_read_models(targets) == expected
    orders = next(t for t in targets if t.projection.name == "orders")
    assert orders.projection.version == 2


def read_side_copy(side: ReadSide, scenario: Scenario, tmp_path: Path) -> dict:  # type: ignore[type-arg]
    """A clean projection of the whole log into a fresh SQLite file, dumped (the oracle)."""
    db = SQLiteDatabase(tmp_path / "oracle.sqlite")
    try:
        targets = sql_targets(db)
        project_log({c: scenario.source(c) for c in ("users", "orders")}, targets, policy=FAST)
        return dump_read_models(targets)
    finally:
        db.close()


def test_a_rebuild_resumes_and_a_second_swap_goes_to_version_3(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    project_live(side, scenario)
    models = read_models_of(side, scenario, tmp_path)
    rebuilder = Rebuilder(models, policy=FAST, page_size=3)
    first = rebuilder.plan("user_profiles")  # registers v2 as building, as a crash would leave
    assert (first.version, first.resumed) == (2, False)
    again = rebuilder.plan("user_profiles", dry_run=True)
    assert (again.version, again.resumed) == (2, True)
    assert rebuilder.rebuild("user_profiles").swapped
    assert rebuilder.rebuild("user_profiles").plan.version == 3


def test_a_dry_run_changes_nothing(side: ReadSide, scenario: Scenario, tmp_path: Path) -> None:
    project_live(side, scenario)
    plan = Rebuilder(read_models_of(side, scenario, tmp_path)).plan("orders", dry_run=True)
    assert (plan.live_version, plan.version, plan.resumed) == (1, 2, False)
    assert plan.heads["orders"] > 0
    assert plan.remaining == plan.heads["orders"]
    with side.db.transaction(write=False) as tx:
        assert records(tx, "orders") == []


def test_an_audit_builds_the_model_as_of_a_time_beside_live(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    project_live(side, scenario)
    users = scenario.envelopes("users")
    cut = users[2].timestamp
    result = Rebuilder(read_models_of(side, scenario, tmp_path), policy=FAST).rebuild(
        "users_directory", at=cut
    )
    assert not result.swapped
    with side.db.transaction(write=False) as tx:
        assert active_versions(tx)["users_directory"][0] == 1
        (audit,) = [r for r in records(tx, "users_directory") if r.kind == "audit"]
    assert audit.status == "audit"
    assert audit.label == f"at_{cut.strftime('%Y%m%dT%H%M%S')}"
    assert result.positions["users"] == max(e.position for e in users if e.timestamp <= cut)


def test_a_mismatch_leaves_live_untouched(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    project_live(side, scenario)
    with side.db.transaction() as tx:  # corrupt live: the rebuild must refuse to swap
        tx.execute("UPDATE orders SET status = 'lost'")
    with pytest.raises(VerifyFailed) as failure:
        Rebuilder(read_models_of(side, scenario, tmp_path), policy=FAST).rebuild("orders")
    assert any("status" in path or "lost" in path for path in failure.value.paths)
    with side.db.transaction(write=False) as tx:
        assert active_versions(tx)["orders"][0] == 1


def test_a_projection_whose_code_changed_is_swapped_in_with_its_differences_listed(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    project_live(side, scenario)
    with side.db.transaction() as tx:  # as an earlier projection code keyed hobbies
        tx.execute("UPDATE user_hobbies SET hobby_lower = upper(hobby)")
    rebuilder = Rebuilder(read_models_of(side, scenario, tmp_path), policy=FAST)
    with pytest.raises(VerifyFailed, match="--changed"):
        rebuilder.rebuild("users_directory")

    result = rebuilder.rebuild("users_directory", changed=True)

    version = result.plan.version
    assert result.swapped and version > 1
    assert result.differences and all(d.startswith("user_hobbies[") for d in result.differences)
    assert result.as_json()["differences"] == result.differences
    with side.db.transaction(write=False) as tx:
        assert active_versions(tx)["users_directory"][0] == version
        keys = [row[0] for row in tx.query(f"SELECT hobby_lower FROM user_hobbies_v{version}")]
    assert keys and all(key == key.casefold() for key in keys)


def test_retire_drops_the_previous_version(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    project_live(side, scenario)
    rebuilder = Rebuilder(read_models_of(side, scenario, tmp_path), policy=FAST)
    rebuilder.rebuild("daily_sales")
    rebuilder.rebuild("user_stats")
    later = datetime(2100, 1, 1, tzinfo=UTC)
    assert rebuilder.retire("daily_sales", now=later) == [1]
    assert rebuilder.retire("user_stats", now=later) == [1]
    assert rebuilder.retire("daily_sales", now=later) == []
    with side.db.transaction(write=False) as tx:
        assert [r.version for r in records(tx, "daily_sales")] == [2]
    user_stats = rebuilder.projection("user_stats")
    assert dump_read_models([rebuilder.models.target(user_stats, 1)]) == {"user_stats": {}}


def test_unknown_projections_and_concurrent_rebuilds_are_refused(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    models = read_models_of(side, scenario, tmp_path)
    with pytest.raises(UnknownProjection):
        Rebuilder(models).plan("nope")
    with models.lock("orders", 2), pytest.raises(Busy):
        Rebuilder(models).rebuild("orders")


def test_a_document_mismatch_is_found_too(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    project_live(side, scenario)
    ada = scenario.users["ada"]
    if side.redis is not None:
        assert side.layout is not None
        side.redis.hset(side.layout.prefix("user_profiles", 1) + f"user:{ada}", "name", "Eve")
    else:
        with side.db.transaction() as tx:
            tx.execute(
                "UPDATE rm_hashes SET value = 'Eve' WHERE projection = 'user_profiles'"
                " AND key = ? AND field = 'name'",
                [f"user:{ada}"],
            )
    with pytest.raises(VerifyFailed) as failure:
        Rebuilder(read_models_of(side, scenario, tmp_path), policy=FAST).rebuild("user_profiles")
    assert failure.value.paths[0].startswith(f"user:{ada}.name: live 'Eve'")
    assert "'Eve'" in failure.value.paths[0]
