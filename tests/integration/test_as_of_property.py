"""Time travel is exact: the state as of T is the fold of exactly the events with timestamp <= T.

The property, on embedded SQLite, with a snapshot every 3 events and with none: random commands
stamped by a fake clock that also steps back (so the per-aggregate clamp is part of what is
tested), then the state at random instants around the events' times.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from contexts.settings import Settings
from domain.errors import DomainError
from domain.orders.order import Order
from domain.orders.service import OrdersService
from domain.service import CommandService
from domain.users.profile import UserProfile
from domain.users.service import UsersService
from eventlog.stores import Services, build_services
from tests.support.aggregates import stored_events
from tests.support.as_of import NO_CONTEXT, ONE_MICROSECOND, assert_state_as_of, fake_clock

STEP = st.integers(min_value=-3_000_000, max_value=4_000_000)  # µs; negative: the clock goes back
WORDS = st.sampled_from(["Chess", "Go", "Poetry"])


@pytest.fixture(scope="module", params=[3, 0], ids=["snapshots-every-3", "no-snapshots"])
def sqlite_stores(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Services, UUID]]:
    folder = tmp_path_factory.mktemp("as-of")
    stores = build_services(
        Settings(data_dir=folder, group_commit=False, snapshot_interval=request.param)
    )
    buyer = (
        stores.application(UsersService)
        .register(NO_CONTEXT, "Buyer", f"{uuid4().hex}@example.com")
        .id
    )
    yield stores, buyer
    stores.close()


def user_command(services: Services, user: UUID, name: str, word: str) -> None:
    users = services.application(UsersService)
    commands: dict[str, Callable[[], object]] = {
        "rename": lambda: users.rename(NO_CONTEXT, user, f"Ada {word}"),
        "add_hobby": lambda: users.add_hobby(NO_CONTEXT, user, word),
        "remove_hobby": lambda: users.remove_hobby(NO_CONTEXT, user, word),
        "move": lambda: users.change_location(NO_CONTEXT, user, word, "GB"),
        "email": lambda: users.change_email(NO_CONTEXT, user, f"{word}-{user.hex}@example.com"),
        "deactivate": lambda: users.deactivate(NO_CONTEXT, user),
        "reactivate": lambda: users.reactivate(NO_CONTEXT, user),
    }
    commands[name]()


def order_command(services: Services, order: UUID, name: str, word: str) -> None:
    orders = services.application(OrdersService)
    commands: dict[str, Callable[[], object]] = {
        "add_line": lambda: orders.add_line(NO_CONTEXT, order, word, len(word), Decimal("1.25")),
        "remove_line": lambda: orders.remove_line(NO_CONTEXT, order, word),
        "place": lambda: orders.place(NO_CONTEXT, order),
        "pay": lambda: orders.mark_paid(NO_CONTEXT, order),
        "ship": lambda: orders.mark_shipped(NO_CONTEXT, order),
        "cancel": lambda: orders.cancel(NO_CONTEXT, order, f"because {word}"),
    }
    commands[name]()


def instants_around(events: Sequence[Any]) -> st.SearchStrategy[datetime]:
    """Event times exactly, one microsecond either side, or anywhere near them."""
    offsets = st.sampled_from([-1, 0, 1]) | STEP
    return st.tuples(st.integers(0, len(events) - 1), offsets).map(
        lambda pick: events[pick[0]].timestamp + timedelta(microseconds=pick[1])
    )


def check_random_instants(
    service: CommandService, kind: type[Aggregate], key: UUID, data: st.DataObject
) -> None:
    events = stored_events(service, key)
    stamps = [event.timestamp for event in events]
    assert stamps == sorted(set(stamps)), "timestamps must strictly increase with the version"
    for at in data.draw(st.lists(instants_around(events), min_size=1, max_size=8)):
        assert_state_as_of(service, kind, key, at)
    assert_state_as_of(service, kind, key, stamps[0] - ONE_MICROSECOND)
    assert_state_as_of(service, kind, key, stamps[-1] + timedelta(days=1))


PROPERTY = hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(
    commands=st.lists(
        st.tuples(
            st.sampled_from(
                ["rename", "add_hobby", "remove_hobby", "move", "email", "deactivate", "reactivate"]
            ),
            WORDS,
            STEP,
        ),
        max_size=20,
    ),
    data=st.data(),
)
def test_a_profile_as_of_any_time_is_the_fold_of_its_events_up_to_that_time(
    sqlite_stores: tuple[Services, UUID],
    commands: list[tuple[str, str, int]],
    data: st.DataObject,
) -> None:
    stores, _ = sqlite_stores
    with fake_clock() as clock:
        user = (
            stores.application(UsersService)
            .register(NO_CONTEXT, "Ada", f"{uuid4().hex}@example.com")
            .id
        )
        for name, word, step in commands:
            clock.step(step)
            with suppress(DomainError):  # a refused command appends nothing
                user_command(stores, user, name, word)
    check_random_instants(stores.users, UserProfile, user, data)


@PROPERTY
@given(
    commands=st.lists(
        st.tuples(
            st.sampled_from(["add_line", "remove_line", "place", "pay", "ship", "cancel"]),
            WORDS,
            STEP,
        ),
        max_size=20,
    ),
    data=st.data(),
)
def test_an_order_as_of_any_time_is_the_fold_of_its_events_up_to_that_time(
    sqlite_stores: tuple[Services, UUID],
    commands: list[tuple[str, str, int]],
    data: st.DataObject,
) -> None:
    stores, buyer = sqlite_stores
    with fake_clock() as clock:
        order = stores.application(OrdersService).create_order(NO_CONTEXT, buyer, "EUR").id
        for name, word, step in commands:
            clock.step(step)
            with suppress(DomainError):
                order_command(stores, order, name, word)
    check_random_instants(stores.orders, Order, order, data)
