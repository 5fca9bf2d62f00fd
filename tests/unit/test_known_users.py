"""What orders keeps of users: the state each users' event leaves, the changes a page of them
makes, and their intake into a real (SQLite) orders store whatever the order and repetition of
the pages."""

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contexts.settings import Settings
from domain.orders.known_users import USERS, user_state_after
from domain.orders.service import OrdersService
from eventlog.envelope import EventEnvelope
from eventlog.replicas import Replica, ReplicaChange, ReplicaStore, changes_of, take_in
from eventlog.stores import event_store_env

REPLICA = Replica(USERS, user_state_after)
LATER_EVENTS = ("Renamed", "Deactivated", "Reactivated", "HobbyAdded")
_positions = itertools.count(1)


def event(
    user: UUID, version: int, event_type: str, aggregate_type: str = "UserProfile"
) -> EventEnvelope:
    """A users' event as the users context publishes it, at the next position."""
    return EventEnvelope(
        position=next(_positions),
        context=USERS,
        aggregate_type=aggregate_type,
        aggregate_id=user,
        aggregate_version=version,
        event_type=event_type,
        schema_version=1,
        timestamp=datetime.now(UTC),
        data={},
    )


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrdersService]:
    """One orders application on an SQLite file, shared by the module's tests (fresh ids)."""
    data_dir: Path = tmp_path_factory.mktemp("stores")
    service = OrdersService(env=event_store_env(Settings(data_dir=data_dir), "orders"))
    yield service
    service.close()


def store_of(orders: OrdersService) -> ReplicaStore:
    return cast(ReplicaStore, orders.recorder)


@pytest.mark.parametrize(
    ("aggregate_type", "event_type", "state"),
    [
        ("UserProfile", "Registered", {"active": True}),
        ("UserProfile", "Deactivated", {"active": False}),
        ("UserProfile", "Reactivated", {"active": True}),
        ("UserProfile", "Renamed", None),
        ("UserProfile", "HobbyAdded", None),
        ("Order", "Registered", None),
    ],
)
def test_each_users_event_leaves_a_whole_state_or_none(
    aggregate_type: str, event_type: str, state: dict[str, Any] | None
) -> None:
    assert user_state_after(aggregate_type, event_type, {"name": "Ada"}) == state


def test_a_page_changes_each_user_once_to_its_latest_relevant_state() -> None:
    ada, bob = uuid4(), uuid4()
    page = [
        event(ada, 1, "Registered"),
        event(bob, 1, "Registered"),
        event(ada, 3, "Deactivated"),
        event(ada, 2, "Reactivated"),  # a version below one already seen changes nothing
        event(ada, 4, "Renamed"),  # the latest event, but irrelevant
        event(bob, 2, "HobbyAdded"),
    ]

    changes = changes_of(REPLICA, page)

    assert sorted(changes, key=lambda change: change.version) == [
        ReplicaChange(bob, 1, {"active": True}),
        ReplicaChange(ada, 3, {"active": False}),
    ]


def test_a_page_of_irrelevant_events_changes_nothing_but_the_checkpoint(
    orders: OrdersService,
) -> None:
    user = uuid4()
    replica = Replica(f"users{uuid4().hex[:8]}", user_state_after)
    page = [event(user, 2, "Renamed"), event(user, 3, "HobbyAdded")]

    assert changes_of(replica, page) == []
    checkpoint = take_in(store_of(orders), replica, page, stream_seq=7)

    assert checkpoint is not None
    assert store_of(orders).replica_checkpoint(replica.upstream) == checkpoint
    assert checkpoint.position == page[-1].position
    assert orders.replica_state(replica.upstream, user) is None
    assert take_in(store_of(orders), replica, []) is None


@st.composite
def shuffled_pages(draw: st.DrawFn) -> tuple[list[str], list[tuple[int, int]], list[int]]:
    """A user's event types (version 1 first), the history cut into pages (start, end), and an
    order of intake: every page at least once, some several times, in any order."""
    types = ["Registered", *draw(st.lists(st.sampled_from(LATER_EVENTS), max_size=8))]
    cuts = sorted(draw(st.sets(st.integers(1, len(types) - 1))) if len(types) > 1 else set())
    bounds = list(itertools.pairwise([0, *cuts, len(types)]))
    indices = list(range(len(bounds)))
    repeated = draw(st.lists(st.sampled_from(indices), max_size=4))
    return types, bounds, draw(st.permutations(indices + repeated))


@settings(max_examples=40, deadline=None, database=None)
@given(history=shuffled_pages())
def test_any_order_and_repetition_of_pages_leaves_the_state_of_the_latest_relevant_event(
    orders: OrdersService, history: tuple[list[str], list[tuple[int, int]], list[int]]
) -> None:
    types, bounds, intake = history
    user = uuid4()
    replica = Replica(f"users{uuid4().hex[:8]}", user_state_after)  # a checkpoint of its own
    envelopes = [event(user, version, kind) for version, kind in enumerate(types, start=1)]
    pages = [envelopes[start:end] for start, end in bounds]

    for index in intake:
        take_in(store_of(orders), replica, pages[index], stream_seq=index + 1)

    latest = [e for e in envelopes if user_state_after(e.aggregate_type, e.event_type, e.data)]
    last = latest[-1]
    expected = user_state_after(last.aggregate_type, last.event_type, last.data)
    assert orders.replica_state(replica.upstream, user) == expected
    checkpoint = store_of(orders).replica_checkpoint(replica.upstream)
    assert checkpoint.position == envelopes[-1].position
    assert checkpoint.stream_seq == len(pages)
