"""Checking time travel: an oracle folding exactly the stored events stamped at or before an
instant, and a fake clock stamping every event of both aggregates, which may also step back
(tests/integration/test_as_of_*.py, tests/unit/test_as_of_snapshots.py)."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate

from domain.errors import NotFoundAtTime
from domain.orders.order import Order
from domain.service import CommandContext, CommandService
from domain.users.profile import UserProfile
from tests.support.aggregates import stored_events

ONE_MICROSECOND = timedelta(microseconds=1)
EPOCH = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
NO_CONTEXT = CommandContext()


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def step(self, microseconds: int) -> None:
        self.now += timedelta(microseconds=microseconds)


@contextmanager
def fake_clock(now: datetime = EPOCH) -> Iterator[FakeClock]:
    """Every event of both aggregates is stamped by this clock (snapshots keep the real one)."""
    clock = FakeClock(now)
    with (
        patch.object(UserProfile.Event, "create_timestamp", staticmethod(clock)),
        patch.object(Order.Event, "create_timestamp", staticmethod(clock)),
    ):
        yield clock


def typed_state(aggregate: Any) -> dict[str, tuple[type, Any]]:
    """Every attribute with its type: a str where an enum member was is a difference."""
    return {
        name: (type(value), value)
        for name, value in vars(aggregate).items()
        if name != "_pending_events"
    }


def fold(events: Sequence[Any]) -> Any:
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def assert_state_as_of(
    service: CommandService, kind: type[Aggregate], key: UUID, at: datetime
) -> None:
    """The oracle: fold exactly the stored events stamped at or before `at`."""
    events = stored_events(service, key)
    upto = [event for event in events if event.timestamp <= at]
    if not upto:
        with pytest.raises(NotFoundAtTime):
            service.state_at(kind, key, at=at)
        return
    state = service.state_at(kind, key, at=at)
    expected = fold(upto)
    assert state.version == len(upto)
    assert state.modified_on == upto[-1].timestamp
    assert typed_state(state) == typed_state(expected)
