"""Event timestamps strictly increase per aggregate; events rebuild the aggregate exactly."""

import ast
import inspect
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate

from domain.aggregate import EventSourcedAggregate
from domain.orders.order import Order, OrderStatus
from domain.users.profile import UserProfile

ONE_MICROSECOND = timedelta(microseconds=1)


class FakeClock:
    """Stands in for an event class's create_timestamp(); the test moves it at will."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return self.now


def install_clock(
    monkeypatch: pytest.MonkeyPatch, event_class: type[Any], now: datetime
) -> FakeClock:
    clock = FakeClock(now)
    monkeypatch.setattr(event_class, "create_timestamp", staticmethod(clock))
    return clock


def fold(events: Sequence[Any]) -> Any:
    """Rebuild an aggregate from its events, as a repository would."""
    aggregate = events[0].mutate(None)
    for event in events[1:]:
        aggregate = event.mutate(aggregate)
    return aggregate


def registered_profile() -> UserProfile:
    profile = UserProfile.register("Ada Lovelace", "ada@example.com")
    profile.collect_events()
    return profile


def test_profiles_are_event_sourced_aggregates() -> None:
    assert issubclass(UserProfile, EventSourcedAggregate)
    assert issubclass(Order, EventSourcedAggregate)


def test_clock_stepping_backwards_is_clamped_to_previous_plus_one_microsecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profile = registered_profile()
    previous = profile.modified_on
    clock = install_clock(monkeypatch, UserProfile.Renamed, previous - timedelta(hours=1))

    profile.rename("Ada King")

    assert clock.calls == 1  # the patched clock was really consulted
    (renamed,) = profile.collect_events()
    assert renamed.timestamp == previous + ONE_MICROSECOND
    assert profile.modified_on == previous + ONE_MICROSECOND


def test_clock_standing_still_is_clamped_to_previous_plus_one_microsecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profile = registered_profile()
    previous = profile.modified_on
    install_clock(monkeypatch, UserProfile.Renamed, previous)

    profile.rename("Ada King")

    (renamed,) = profile.collect_events()
    assert renamed.timestamp == previous + ONE_MICROSECOND


def test_clock_moving_forwards_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    profile = registered_profile()
    later = profile.modified_on + timedelta(seconds=5)
    install_clock(monkeypatch, UserProfile.Renamed, later)

    profile.rename("Ada King")

    (renamed,) = profile.collect_events()
    assert renamed.timestamp == later


def test_a_clock_stuck_in_the_past_still_gives_strictly_increasing_timestamps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profile = registered_profile()
    created = profile.modified_on
    # Every event of the aggregate's own Event base class reads the patched clock.
    install_clock(monkeypatch, UserProfile.Event, datetime(2000, 1, 1, tzinfo=UTC))

    profile.rename("Ada King")
    profile.add_hobby("Chess")
    profile.change_location("London", "GB")
    profile.deactivate()
    profile.reactivate()

    stamps = [event.timestamp for event in profile.collect_events()]
    assert stamps == [created + n * ONE_MICROSECOND for n in range(1, 6)]


def test_clamping_applies_per_aggregate_after_a_backwards_jump(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order = Order.create(uuid4(), "EUR")
    created = order.modified_on
    clock = install_clock(monkeypatch, Order.Event, created + timedelta(minutes=10))

    order.add_line("A", 1, Decimal("1.00"))
    clock.now = created + timedelta(minutes=5)  # NTP steps the clock back
    order.add_line("B", 1, Decimal("1.00"))
    clock.now = created + timedelta(minutes=20)  # and it moves on again
    order.place()

    events = order.collect_events()
    assert [e.timestamp for e in events] == [
        created,
        created + timedelta(minutes=10),
        created + timedelta(minutes=10) + ONE_MICROSECOND,
        created + timedelta(minutes=20),
    ]
    assert all(a.timestamp < b.timestamp for a, b in pairwise(events))


# round trip: folding the collected events rebuilds the aggregate


def test_user_profile_round_trips_through_its_events() -> None:
    profile = UserProfile.register("Ada Lovelace", "ada@example.com")
    profile.rename("Ada King")
    profile.change_email("countess@example.org")
    profile.add_hobby("Chess")
    profile.add_hobby("Poetry")
    profile.add_hobby("Go")
    profile.remove_hobby("poetry")
    profile.change_location("London", "gb")
    profile.deactivate()
    events = profile.collect_events()
    assert len(events) == 9

    rebuilt = fold(events)

    assert isinstance(rebuilt, UserProfile)
    assert rebuilt is not profile
    assert rebuilt.id == profile.id
    assert rebuilt.version == profile.version == 9
    assert rebuilt.created_on == profile.created_on
    assert rebuilt.modified_on == profile.modified_on == events[-1].timestamp
    assert rebuilt.name == "Ada King"
    assert rebuilt.email == "countess@example.org"
    assert rebuilt.hobbies == ["Chess", "Go"]
    assert (rebuilt.city, rebuilt.country) == ("London", "GB")
    assert rebuilt.active is False
    assert rebuilt == profile  # every attribute, per the library's __eq__


def test_order_round_trips_through_its_events() -> None:
    user_id = uuid4()
    order = Order.create(user_id, "gbp")
    order.add_line("A", 2, Decimal("3.50"))
    order.add_line("B", 1, Decimal("10"))
    order.add_line("C", 5, Decimal("0.99"))
    order.remove_line("B")
    order.place()
    order.mark_paid()
    events = order.collect_events()

    rebuilt = fold(events)

    assert isinstance(rebuilt, Order)
    assert rebuilt.id == order.id
    assert rebuilt.version == order.version == 7
    assert rebuilt.user_id == user_id
    assert rebuilt.currency == "GBP"
    assert rebuilt.status is OrderStatus.PAID
    assert list(rebuilt.lines) == ["A", "C"]
    assert rebuilt.total == Decimal("11.95")
    assert rebuilt.modified_on == order.modified_on
    assert rebuilt == order


def test_round_trip_preserves_clamped_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    order = Order.create(uuid4(), "EUR")
    install_clock(monkeypatch, Order.Event, order.modified_on - timedelta(days=1))
    order.add_line("A", 1, Decimal("1.00"))
    order.cancel("duplicate order")
    events = order.collect_events()

    rebuilt = fold(events)

    assert rebuilt.modified_on == order.created_on + 2 * ONE_MICROSECOND
    assert rebuilt == order


# every event class declares its own class_version


def declared_event_classes(aggregate: type[Any]) -> list[str]:
    """Names of the classes nested in the aggregate's class statement, read from the source."""
    source = inspect.getmodule(aggregate)
    assert source is not None
    module = ast.parse(inspect.getsource(source))
    (class_def,) = [
        node
        for node in module.body
        if isinstance(node, ast.ClassDef) and node.name == aggregate.__name__
    ]
    return [node.name for node in class_def.body if isinstance(node, ast.ClassDef)]


def as_declared(aggregate: type[Any], name: str) -> type[Any]:
    """The class as written in the source.

    The library redefines each nested event class as a subclass of the written one (and of the
    aggregate's own Event base), so the written class is the last of that name in the MRO.
    """
    qualname = f"{aggregate.__qualname__}.{name}"
    same_name: list[type[Any]] = [
        c
        for c in getattr(aggregate, name).__mro__
        if c.__qualname__ == qualname and c.__module__ == aggregate.__module__
    ]
    return same_name[-1]


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [
        (
            UserProfile,
            {
                "Registered",
                "Renamed",
                "EmailChanged",
                "HobbyAdded",
                "HobbyRemoved",
                "LocationChanged",
                "Deactivated",
                "Reactivated",
            },
        ),
        (Order, {"Created", "LineAdded", "LineRemoved", "Placed", "Paid", "Shipped", "Cancelled"}),
    ],
)
def test_every_event_class_declares_class_version(aggregate: type[Any], expected: set[str]) -> None:
    names = [
        name
        for name in declared_event_classes(aggregate)
        if issubclass(getattr(aggregate, name), Aggregate.Event)
    ]
    assert set(names) == expected
    for name in names:
        declared = as_declared(aggregate, name)
        assert "class_version" in declared.__dict__, f"{declared.__qualname__} lacks class_version"
        assert isinstance(declared.__dict__["class_version"], int)
        assert declared.__dict__["class_version"] >= 1
