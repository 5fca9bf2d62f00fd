"""A checkpoint in Redis that another writer moves ahead of a projector (another stack sharing the
Redis database, or a projector that handed over): the projector takes the events up to it as that
writer's and goes on after them, as before, but says so in a warning naming the events it leaves.

Without the warning such a loss is silent: a fan-out bench whose Redis database another process
wrote lost the `order:<id>` documents of its first orders, and only their Order.Paid events, parked
as UnresolvedReference seconds later, showed it. A batch wholly at or below the moved checkpoint
was even taken as committed, since the script compared nothing."""

import logging
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from projections.engine import Engine
from projections.model import Message
from projections.redis_target import RedisDocumentTarget
from tests.support.projection_doubles import envelope
from tests.support.projections import FAST, ReadSide, read_side

USER = UUID(int=42)


@pytest.fixture
def side(tmp_path: Path) -> Iterator[ReadSide]:
    with read_side("stack", tmp_path) as opened:
        yield opened


def created(position: int) -> Message:
    data: dict[str, object] = {"user_id": str(USER), "currency": "EUR"}
    return Message(envelope("Created", data, position=position, aggregate_id=UUID(int=position)))


def move_checkpoint(side: ReadSide, target: RedisDocumentTarget, position: int) -> None:
    """What another writer of these keys does: a checkpoint this projector did not write."""
    assert side.redis is not None and side.layout is not None
    p = target.projection
    side.redis.set(side.layout.checkpoint_key(p.name, p.version, "orders"), position)


def order_documents(side: ReadSide, target: RedisDocumentTarget) -> set[int]:
    assert side.redis is not None and side.layout is not None
    prefix = side.layout.prefix(target.projection.name, target.projection.version)
    return {
        UUID(key.removeprefix(f"{prefix}order:")).int
        for key in side.redis.scan_iter(match=f"{prefix}order:*")
    }


def stats_target(side: ReadSide) -> RedisDocumentTarget:
    target = side.target("user_stats")
    assert isinstance(target, RedisDocumentTarget)
    return target


def foreign_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "another writer moved" in r.getMessage()]


def test_a_batch_across_a_checkpoint_another_writer_moved_names_the_events_it_leaves(
    side: ReadSide, caplog: pytest.LogCaptureFixture
) -> None:
    target = stats_target(side)
    engine = Engine(target, FAST)
    engine.handle("orders", [created(1)])
    move_checkpoint(side, target, 5)

    with caplog.at_level(logging.WARNING, logger="strata.projections"):
        engine.handle("orders", [created(3), created(7)])

    assert target.checkpoint("orders").position == 7
    assert order_documents(side, target) == {1, 7}
    [warning] = foreign_warnings(caplog)
    assert "from 1 to 5" in warning and "positions 3..3" in warning


def test_a_batch_wholly_below_a_checkpoint_another_writer_moved_is_not_silent(
    side: ReadSide, caplog: pytest.LogCaptureFixture
) -> None:
    target = stats_target(side)
    engine = Engine(target, FAST)
    engine.handle("orders", [created(1)])
    move_checkpoint(side, target, 10)

    with caplog.at_level(logging.WARNING, logger="strata.projections"):
        outcome = engine.handle("orders", [created(3), created(7)])

    assert outcome.checkpoint is not None and outcome.checkpoint.position == 7
    assert target.checkpoint("orders").position == 10
    assert order_documents(side, target) == {1}
    [warning] = foreign_warnings(caplog)
    assert "from 1 to 10" in warning and "positions 3..7" in warning
