"""Time travel through the command service, on SQLite and on PostgreSQL (the `settings`
fixture), with a snapshot every 3 events: every instant and version resolves to the state then
current, snapshots are taken at multiples of the interval and shorten the fold, a failed
snapshot fails no command, and an aggregate's events come with their metadata.

Event times come from a fake clock that also steps back, so the per-aggregate clamp is part of
what is tested.
"""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import OperationalError

from contexts.settings import Settings
from domain.errors import AggregateNotFound, InvalidValue, NoSuchVersion, NotFoundAtTime
from domain.orders.order import Order
from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.profile import UserProfile
from domain.users.service import UsersService
from eventlog.envelope import EventEnvelope
from eventlog.stores import Services, build_services
from tests.support.aggregates import stored_events
from tests.support.as_of import (
    NO_CONTEXT,
    ONE_MICROSECOND,
    assert_state_as_of,
    fake_clock,
    fold,
    typed_state,
)


@pytest.fixture
def stores(settings: Settings) -> Iterator[Services]:
    built = build_services(
        settings.model_copy(update={"group_commit": False, "snapshot_interval": 3})
    )
    yield built
    built.close()


def profile_with_history(stores: Services) -> tuple[UUID, list[Any]]:
    """Ten events, 10 s apart on a clock in 2001 that twice steps back a minute."""
    with fake_clock() as clock:
        user = (
            stores.application(UsersService)
            .register(NO_CONTEXT, "Ada", f"{uuid4().hex}@example.com")
            .id
        )
        for n in range(1, 10):
            clock.step(-60_000_000 if n in (4, 7) else 10_000_000)
            stores.application(UsersService).rename(NO_CONTEXT, user, f"Ada {n}")
    return user, stored_events(stores.users, user)


def test_every_instant_between_events_resolves_to_the_version_then_current(
    stores: Services,
) -> None:
    user, events = profile_with_history(stores)
    users = stores.users

    assert len(events) == 10
    for event in events:
        assert_state_as_of(users, UserProfile, user, event.timestamp)
        assert_state_as_of(users, UserProfile, user, event.timestamp - ONE_MICROSECOND)
        assert_state_as_of(users, UserProfile, user, event.timestamp + ONE_MICROSECOND)
    assert users.state_at(UserProfile, user, at=datetime.now(UTC)).name == "Ada 9"
    # the clamp: after a step back, an event is one microsecond after the one before it
    assert events[4].timestamp == events[3].timestamp + ONE_MICROSECOND


def test_snapshots_are_taken_at_multiples_of_the_interval_and_only_then(
    stores: Services,
) -> None:
    user, events = profile_with_history(stores)
    assert stores.users.snapshots is not None

    snapshots = cast("list[Snapshot]", list(stores.users.snapshots.get(user)))

    assert [s.originator_version for s in snapshots] == [3, 6, 9]
    # a snapshot's own timestamp is when it was taken (now), long after the 2001 events it
    # holds: a timestamp cut-off starting from it would be wrong; state_at cuts by version
    assert all(s.timestamp > events[-1].timestamp for s in snapshots)
    for snapshot in snapshots:
        version = snapshot.originator_version
        restored = snapshot.mutate(None)
        assert typed_state(restored) == typed_state(fold(events[:version]))


def test_state_as_of_folds_only_the_events_after_the_nearest_snapshot(
    stores: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, events = profile_with_history(stores)
    event_store = stores.users.repository.event_store
    read: list[int] = []
    original_get = event_store.get

    def counting_get(*args: Any, **kwargs: Any) -> Any:
        found = list(original_get(*args, **kwargs))
        read.extend(event.originator_version for event in found)
        return iter(found)

    monkeypatch.setattr(event_store, "get", counting_get)

    state = stores.users.state_at(UserProfile, user, at=events[7].timestamp)  # version 8

    assert state.version == 8
    assert read == [7, 8]  # from the snapshot at 6, never from the start


def test_version_queries_and_their_errors(stores: Services) -> None:
    user, events = profile_with_history(stores)
    users = stores.users

    for version in range(1, 11):
        state = users.state_at(UserProfile, user, version=version)
        assert typed_state(state) == typed_state(fold(events[:version]))
    with pytest.raises(NoSuchVersion, match="has no version 11; its latest is 10"):
        users.state_at(UserProfile, user, version=11)
    with pytest.raises(InvalidValue):
        users.state_at(UserProfile, user, version=0)
    with pytest.raises(NotFoundAtTime, match=r"did not exist yet at .* it was created at"):
        users.state_at(UserProfile, user, at=events[0].timestamp - ONE_MICROSECOND)
    with pytest.raises(AggregateNotFound, match="no UserProfile with id"):
        users.state_at(UserProfile, uuid4(), at=datetime.now(UTC))
    with pytest.raises(AggregateNotFound):
        users.state_at(UserProfile, uuid4(), version=1)
    with pytest.raises(InvalidValue, match="no time zone"):
        users.state_at(UserProfile, user, at=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="exactly one"):
        users.state_at(UserProfile, user)
    with pytest.raises(ValueError, match="exactly one"):
        users.state_at(UserProfile, user, at=datetime.now(UTC), version=1)


def test_an_order_with_snapshots_keeps_its_types(stores: Services) -> None:
    buyer = (
        stores.application(UsersService)
        .register(NO_CONTEXT, "Buyer", f"{uuid4().hex}@example.com")
        .id
    )
    order = stores.application(OrdersService).create_order(NO_CONTEXT, buyer, "EUR").id
    for sku in ("A", "B", "C", "D"):
        stores.application(OrdersService).add_line(NO_CONTEXT, order, sku, 2, Decimal("3.50"))
    stores.application(OrdersService).place(NO_CONTEXT, order)  # version 6: a snapshot

    now = stores.orders.state_at(Order, order, at=datetime.now(UTC))
    current = stores.application(OrdersService).order(order)

    assert now.version == 6
    assert typed_state(now) == typed_state(current)
    assert now.total == Decimal("28.00")


def test_a_failed_snapshot_does_not_fail_the_committed_command(
    stores: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    user = (
        stores.application(UsersService)
        .register(NO_CONTEXT, "Ada", f"{uuid4().hex}@example.com")
        .id
    )
    stores.application(UsersService).rename(NO_CONTEXT, user, "Ada 2")
    assert stores.users.snapshots is not None

    def broken(*_: Any, **__: Any) -> None:
        raise OperationalError("the snapshot store is down")

    monkeypatch.setattr(stores.users.snapshots, "put", broken)
    with caplog.at_level(logging.ERROR, logger="strata.domain"):
        result = stores.application(UsersService).rename(
            NO_CONTEXT, user, "Ada 3"
        )  # version 3: due

    assert result.version == 3
    assert "snapshot of" in caplog.text
    state = stores.users.state_at(UserProfile, user, at=datetime.now(UTC))
    assert (state.version, state.name) == (3, "Ada 3")


def test_an_aggregates_events_come_with_their_metadata_in_version_order(
    stores: Services,
) -> None:
    user = (
        stores.application(UsersService)
        .register(CommandContext(correlation_id="req-1"), "Ada", f"{uuid4().hex}@example.com")
        .id
    )
    stores.application(UsersService).add_hobby(
        CommandContext(correlation_id="req-2", causation_id="c-2"), user, "Go"
    )
    stores.application(UsersService).rename(NO_CONTEXT, user, "Ada King")
    recorder: Any = stores.users.recorder

    every: list[EventEnvelope] = recorder.select_aggregate_envelopes("users", user, 0, 99)
    middle: list[EventEnvelope] = recorder.select_aggregate_envelopes("users", user, 1, 2)

    assert [e.aggregate_version for e in every] == [1, 2, 3]
    assert [e.event_type for e in every] == ["Registered", "HobbyAdded", "Renamed"]
    assert [e.correlation_id for e in every] == ["req-1", "req-2", None]
    assert every[1].causation_id == "c-2"
    assert every[1].data == {"hobby": "Go"}
    assert [e.position for e in every] == [
        stores.users.side_records.position_of(user, v) for v in (1, 2, 3)
    ]
    assert [e.aggregate_version for e in middle] == [2]
    assert recorder.select_aggregate_envelopes("users", uuid4(), 0, 99) == []
