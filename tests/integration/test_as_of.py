"""Time travel is exact: the state as of T is the fold of exactly the events with timestamp <= T.

With snapshots (a small interval) and without, on SQLite and on PostgreSQL, through the command
service and through `GET ...?as_of=`. Event times come from a fake clock that also steps back,
so the per-aggregate clamp is part of what is tested.
"""

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest.mock import patch
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import OperationalError
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from contexts.settings import CONTEXTS, Settings
from domain.errors import (
    AggregateNotFound,
    DomainError,
    InvalidValue,
    NoSuchVersion,
    NotFoundAtTime,
)
from domain.orders.order import Order
from domain.service import CommandContext, CommandService
from domain.users.profile import UserProfile
from eventlog.envelope import EventEnvelope
from eventlog.stores import Services, build_services
from tests.support.api import assert_problem, register
from tests.support.postgres import require_postgres, scratch_databases, url_settings

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
    events = list(service.events.get(key))
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


# ---------------------------------------------------------------------------------------------
# The property, on embedded SQLite, with a snapshot every 3 events and with none

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
    buyer = stores.users.register(NO_CONTEXT, "Buyer", f"{uuid4().hex}@example.com").id
    yield stores, buyer
    stores.close()


def user_command(services: Services, user: UUID, name: str, word: str) -> None:
    users = services.users
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
    orders = services.orders
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
    events = list(service.events.get(key))
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
        user = stores.users.register(NO_CONTEXT, "Ada", f"{uuid4().hex}@example.com").id
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
        order = stores.orders.create_order(NO_CONTEXT, buyer, "EUR").id
        for name, word, step in commands:
            clock.step(step)
            with suppress(DomainError):
                order_command(stores, order, name, word)
    check_random_instants(stores.orders, Order, order, data)


# ---------------------------------------------------------------------------------------------
# Deterministic cases on both backends (the `settings` fixture: SQLite and PostgreSQL)


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
        user = stores.users.register(NO_CONTEXT, "Ada", f"{uuid4().hex}@example.com").id
        for n in range(1, 10):
            clock.step(-60_000_000 if n in (4, 7) else 10_000_000)
            stores.users.rename(NO_CONTEXT, user, f"Ada {n}")
    return user, list(stores.users.events.get(user))


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

    snapshots = list(stores.users.snapshots.get(user))

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
    buyer = stores.users.register(NO_CONTEXT, "Buyer", f"{uuid4().hex}@example.com").id
    order = stores.orders.create_order(NO_CONTEXT, buyer, "EUR").id
    for sku in ("A", "B", "C", "D"):
        stores.orders.add_line(NO_CONTEXT, order, sku, 2, Decimal("3.50"))
    stores.orders.place(NO_CONTEXT, order)  # version 6: a snapshot

    now = stores.orders.state_at(Order, order, at=datetime.now(UTC))
    current = stores.orders.order(order)

    assert now.version == 6
    assert typed_state(now) == typed_state(current)
    assert now.total == Decimal("28.00")


def test_a_failed_snapshot_does_not_fail_the_committed_command(
    stores: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    user = stores.users.register(NO_CONTEXT, "Ada", f"{uuid4().hex}@example.com").id
    stores.users.rename(NO_CONTEXT, user, "Ada 2")
    assert stores.users.snapshots is not None

    def broken(*_: Any, **__: Any) -> None:
        raise OperationalError("the snapshot store is down")

    monkeypatch.setattr(stores.users.snapshots, "put", broken)
    with caplog.at_level(logging.ERROR, logger="strata.domain"):
        result = stores.users.rename(NO_CONTEXT, user, "Ada 3")  # version 3: due

    assert result.version == 3
    assert "snapshot of" in caplog.text
    state = stores.users.state_at(UserProfile, user, at=datetime.now(UTC))
    assert (state.version, state.name) == (3, "Ada 3")


def test_an_aggregates_events_come_with_their_metadata_in_version_order(
    stores: Services,
) -> None:
    user = stores.users.register(
        CommandContext(correlation_id="req-1"), "Ada", f"{uuid4().hex}@example.com"
    ).id
    stores.users.add_hobby(CommandContext(correlation_id="req-2", causation_id="c-2"), user, "Go")
    stores.users.rename(NO_CONTEXT, user, "Ada King")
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


# ---------------------------------------------------------------------------------------------
# GET ...?as_of= on the write API, both backends


def test_get_a_profile_as_of_a_time(client: TestClient) -> None:
    user = register(client, name="Ada")
    first = client.get(f"/users/{user}").json()
    assert client.put(f"/users/{user}/name", json={"name": "Ada King"}).status_code == 200
    assert client.post(f"/users/{user}/hobbies", json={"hobby": "Chess"}).status_code == 200

    then = client.get(f"/users/{user}", params={"as_of": first["modified_on"]})
    now = client.get(f"/users/{user}", params={"as_of": "now"})
    current = client.get(f"/users/{user}")

    assert then.status_code == 200
    assert then.json() == first
    assert then.headers["ETag"] == '"1"'
    assert now.json() == current.json()
    assert now.headers["ETag"] == current.headers["ETag"] == '"3"'


def test_get_an_order_as_of_a_time(client: TestClient) -> None:
    user = register(client)
    order = client.post("/orders", json={"user_id": user, "currency": "EUR"}).json()["id"]
    line = {"sku": "A-1", "quantity": 2, "unit_price": "9.99"}
    assert client.post(f"/orders/{order}/lines", json=line).status_code == 200
    with_line = client.get(f"/orders/{order}").json()
    assert client.post(f"/orders/{order}/place").status_code == 200

    then = client.get(f"/orders/{order}", params={"as_of": with_line["modified_on"]})

    assert then.status_code == 200
    assert then.json() == with_line
    assert then.json()["status"] == "draft"
    assert then.headers["ETag"] == '"2"'
    assert client.get(f"/orders/{order}", params={"as_of": "-0s"}).json()["status"] == "placed"


def test_as_of_before_the_aggregate_existed_is_a_404_naming_when_it_was_created(
    client: TestClient,
) -> None:
    user = register(client)
    created = client.get(f"/users/{user}").json()["created_on"]
    before = (datetime.fromisoformat(created) - ONE_MICROSECOND).isoformat()

    response = client.get(f"/users/{user}", params={"as_of": before})

    body = assert_problem(response, 404, "did not exist yet", "it was created at")
    assert body["type"] == "/problems/not-found-at-time"
    unknown = client.get(f"/orders/{uuid4()}", params={"as_of": "now"})
    assert assert_problem(unknown, 404, "no Order with id")["type"] == "/problems/not-found"


@pytest.mark.parametrize("as_of", ["yesterday", "2026-13-01", "-2x", ""])
def test_an_unparseable_as_of_is_a_422_naming_the_parameter(client: TestClient, as_of: str) -> None:
    user = register(client)

    response = client.get(f"/users/{user}", params={"as_of": as_of})

    body = assert_problem(response, 422, "query.as_of")
    assert "is not a time" in body["errors"][0]["message"]


# ---------------------------------------------------------------------------------------------
# The snapshots table on a fresh PostgreSQL database, with replicas starting at the same moment


@pytest.mark.postgres
def test_replicas_starting_together_on_fresh_databases_all_start() -> None:
    url = require_postgres()
    with scratch_databases(url, *CONTEXTS) as urls:
        settings = Settings(**url_settings(urls))
        start = threading.Barrier(4)
        failures: list[BaseException] = []

        def replica() -> None:
            start.wait()
            try:
                build_services(settings).close()
            except BaseException as error:  # noqa: BLE001 - collected for the assertion
                failures.append(error)

        threads = [threading.Thread(target=replica) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert failures == []
        with psycopg.connect(urls["users"]) as conn:
            found = conn.execute("SELECT to_regclass('users_snapshots') IS NOT NULL").fetchone()
        assert found == (True,)


def test_zero_interval_takes_no_snapshots(tmp_path: Path) -> None:
    stores = build_services(Settings(data_dir=tmp_path, group_commit=False, snapshot_interval=0))
    try:
        user = stores.users.register(NO_CONTEXT, "Ada", f"{uuid4().hex}@example.com").id
        for n in range(5):
            stores.users.rename(NO_CONTEXT, user, f"Ada {n}")
        assert stores.users.snapshots is None
        assert stores.users.state_at(UserProfile, user, version=4).name == "Ada 2"
    finally:
        stores.close()
