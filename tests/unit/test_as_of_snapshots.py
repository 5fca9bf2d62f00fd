"""Snapshots restore aggregates exactly; the service's snapshot store follows its interval."""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.application import project_aggregate
from eventsourcing.domain import Aggregate

from domain.aggregate import AggregateSnapshot
from domain.orders.order import Order, OrderStatus
from domain.orders.service import OrdersService
from domain.service import CommandService, fast_fold
from domain.users.profile import UserProfile
from domain.users.service import UsersService
from tests.support.as_of import typed_state

IN_MEMORY = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def users_service(**kwargs: Any) -> UsersService:
    return UsersService(env=IN_MEMORY, **kwargs)


def orders_service(**kwargs: Any) -> OrdersService:
    return OrdersService(env=IN_MEMORY, **kwargs)


def through_the_store(service: CommandService, aggregate: Aggregate) -> Any:
    """Take the aggregate's snapshot, store it, read it back and rebuild from it."""
    assert service.snapshots is not None
    service.snapshots.put([type(aggregate).Snapshot.take(aggregate)])
    [stored] = service.snapshots.get(aggregate.id, desc=True, limit=1)
    assert isinstance(stored, AggregateSnapshot)
    return stored.mutate(None)


def test_a_profile_comes_back_from_its_snapshot_exactly() -> None:
    profile = UserProfile.register("Ada Lovelace", "ada@example.com")
    profile.add_hobby("Chess")
    profile.change_location("London", "GB")
    profile.deactivate()
    profile.collect_events()

    restored = through_the_store(users_service(), profile)

    assert isinstance(restored, UserProfile)
    assert typed_state(restored) == typed_state(profile)
    assert (restored.id, restored.version) == (profile.id, profile.version)


@pytest.mark.parametrize("status", list(OrderStatus))
def test_an_order_comes_back_from_its_snapshot_with_its_status_a_member(
    status: OrderStatus,
) -> None:
    order = Order.create(uuid4(), "EUR")
    order.add_line("A-1", 3, Decimal("9.99"))
    steps = {
        OrderStatus.PLACED: [order.place],
        OrderStatus.PAID: [order.place, order.mark_paid],
        OrderStatus.SHIPPED: [order.place, order.mark_paid, order.mark_shipped],
        OrderStatus.CANCELLED: [lambda: order.cancel("changed my mind")],
    }
    for step in steps.get(status, []):
        step()
    order.collect_events()

    restored = through_the_store(orders_service(), order)

    assert restored.status is status  # JSON alone would give back the plain string
    assert typed_state(restored) == typed_state(order)
    assert restored.total == order.total


def test_the_snapshot_store_exists_exactly_when_the_interval_is_not_zero() -> None:
    assert users_service().snapshots is not None  # on by default
    assert users_service().snapshot_interval == 100
    assert users_service(snapshot_interval=7).snapshots is not None
    assert users_service(snapshot_interval=0).snapshots is None
    # the interval decides, whatever the library's own environment variable says
    said_no = {**IN_MEMORY, "USERS_IS_SNAPSHOTTING_ENABLED": "n", "IS_SNAPSHOTTING_ENABLED": "n"}
    assert UsersService(env=said_no, snapshot_interval=5).snapshots is not None
    said_yes = {**IN_MEMORY, "USERS_IS_SNAPSHOTTING_ENABLED": "y"}
    assert UsersService(env=said_yes, snapshot_interval=0).snapshots is None
    assert orders_service(snapshot_interval=0).snapshots is None


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="snapshot_interval"):
        users_service(snapshot_interval=-1)


def events_of(count: int) -> Sequence[Any]:
    profile = UserProfile.register("Ada", "ada@example.com")
    for n in range(count - 1):
        profile.rename(f"Ada {n}")
    return profile.collect_events()


def test_the_fast_fold_gives_what_the_library_fold_gives() -> None:
    events = events_of(50)
    for cut in (1, 2, 25, 50):
        fast = fast_fold(None, events[:cut])
        slow = project_aggregate(None, events[:cut])
        assert typed_state(fast) == typed_state(slow)
    assert fast_fold(None, []) is None
