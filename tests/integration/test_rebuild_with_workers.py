"""`replay rebuild` while projector workers of the partitioned mode project: the swap waits for
no worker and stops none. Workers' batches hold the pointer row `FOR SHARE` like the single
projector's; the swap catches live up past what each partition applied, gives the shadow
checkpoints from which every partition continues, and the workers' next batches go to the new
version: nothing applied twice, nothing skipped, on PostgreSQL and Redis models."""

import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.envelope import PARTITIONS
from projections.engine import Engine, Target
from projections.leases import Lease
from projections.rebuild import Rebuilder
from projections.targets import following_targets
from tests.support.dumps import dump_read_models
from tests.support.projections import (
    FAST,
    ReadSide,
    Scenario,
    expected_dump,
    read_models_of,
)

pytestmark = [pytest.mark.postgres]

REBUILT = ("orders", "user_profiles", "user_stats")
"""A relational model in PostgreSQL and two document models in Redis."""


def workers(side: ReadSide) -> dict[int, list[Target]]:
    """Each partition's worker targets: following the active version, bound to the lease."""
    held = {
        partition: following_targets(
            side.db, side.redis, layout=side.layout, lease=Lease(partition, 1)
        )
        for partition in range(PARTITIONS)
    }
    for targets in held.values():
        for target in targets:
            target.prepare()
    return held


def work(held: dict[int, list[Target]], scenario: Scenario, *, hold_back: int = 0) -> None:
    """Each partition's worker takes in its partition's messages (as its feed delivers them:
    from the start, what it applied already is skipped by its checkpoints), all but the last
    `hold_back` of one partition (the last message's)."""
    lagging = scenario.messages("orders")[-1].envelope.partition
    for partition, targets in held.items():
        for target in targets:
            engine = Engine(target, FAST)
            for context in target.projection.contexts:
                messages = [
                    m for m in scenario.messages(context) if m.envelope.partition == partition
                ]
                if partition == lagging:
                    messages = messages[: len(messages) - hold_back]
                for start in range(0, len(messages), 4):
                    engine.handle(context, messages[start : start + 4])


def more_events(scenario: Scenario) -> None:
    """Events after the swap, in many partitions."""
    ctx = CommandContext(correlation_id="after the swap")
    services = scenario.services
    for n in range(12):
        email = f"after-{n}-{uuid.uuid4().hex[:8]}@x.io"
        user = services.application(UsersService).register(ctx, f"After {n}", email).id
        order = services.application(OrdersService).create_order(ctx, user, "EUR").id
        services.application(OrdersService).add_line(ctx, order, "A", 1 + n, Decimal("1.25"))
        services.application(UsersService).rename(ctx, user, f"After {n} renamed")


def test_a_rebuild_swaps_under_workers_and_they_go_on_in_the_new_version(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    held = workers(side)
    work(held, scenario, hold_back=2)  # one partition has not applied its last 2 orders events
    lagging = scenario.messages("orders")[-1].envelope.partition
    behind = [m for m in scenario.messages("orders") if m.envelope.partition == lagging][-2:]
    rebuilder = Rebuilder(read_models_of(side, scenario, tmp_path), policy=FAST)
    for name in REBUILT:
        result = rebuilder.rebuild(name)
        assert result.swapped
        if name == "orders":  # live caught up from its lowest partition, not the log's start
            past_lowest = [
                m for m in scenario.messages("orders") if m.position >= behind[0].position
            ]
            assert result.events - result.backfill_events == len(past_lowest)
    more_events(scenario)
    work(held, scenario)

    live = following_targets(side.db, side.redis, layout=side.layout)
    for target in live:
        target.prepare()
    versions = {t.projection.name: t.projection.version for t in live}
    assert {name: versions[name] for name in REBUILT} == dict.fromkeys(REBUILT, 2)
    assert dump_read_models(live) == expected_dump(scenario, tmp_path)
