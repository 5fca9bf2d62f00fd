"""Orders' replica of users on PostgreSQL and SQLite: the intake is exactly once in effect
whatever the order and repetition of the pages, its checkpoint never moves back, concurrent
appliers neither deadlock nor lose a change, and a process serving both contexts reads the users'
log at each lookup (`eventlog.stores.follow_log`).

The events are the users context's own, from its store. The PostgreSQL stores are the session's
scratch databases: each test takes its pages in under an upstream name of its own.
"""

import random
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar, cast
from uuid import UUID, uuid4

import pytest

from contexts.settings import Settings
from domain.orders.known_users import USERS, user_state_after
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.envelope import EventEnvelope, envelope_source
from eventlog.replica_feeds import StoreTail
from eventlog.replicas import Replica, ReplicaCheckpoint, ReplicaStore, take_in
from eventlog.stores import Services, build_services
from tests.support.api import unique_email

CTX = CommandContext(correlation_id="corr-replica-test")
T = TypeVar("T")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings.model_copy(update={"group_commit": False}))
    yield built
    built.close()


def fresh_replica() -> Replica:
    """Orders' replica of users under a name of its own: a checkpoint no other test moves."""
    return Replica(f"users{uuid4().hex[:8]}", user_state_after)


def replica_store(services: Services) -> ReplicaStore:
    return cast(ReplicaStore, services.orders.recorder)


def users_log(services: Services, act: Callable[[], object]) -> list[EventEnvelope]:
    """The users' events `act` appends, read back from their store."""
    recorder = services.users.recorder
    start = recorder.max_notification_id() or 0
    act()
    return envelope_source(recorder).select_envelopes(USERS, start, 10_000)


def a_users_life(services: Services) -> tuple[UUID, list[EventEnvelope]]:
    """One user: registered, renamed, deactivated, reactivated, deactivated (versions 1-5)."""
    users, ids = services.application(UsersService), []

    def act() -> None:
        user = users.register(CTX, "Ada", unique_email()).id
        ids.append(user)
        users.rename(CTX, user, "Ada King")
        users.deactivate(CTX, user)
        users.reactivate(CTX, user)
        users.deactivate(CTX, user)

    log = users_log(services, act)
    assert [e.aggregate_version for e in log] == [1, 2, 3, 4, 5]
    return ids[0], log


def test_duplicate_and_out_of_order_pages_leave_the_state_of_the_highest_version(
    services: Services,
) -> None:
    user, log = a_users_life(services)
    registered, reactivated, deactivated = log[0:2], log[2:4], log[4:5]
    store, replica = replica_store(services), fresh_replica()

    def state_after(page: list[EventEnvelope]) -> object:
        take_in(store, replica, page)
        return services.orders.replica_state(replica.upstream, user)

    assert state_after(reactivated) == {"active": True}
    assert state_after(reactivated) == {"active": True}
    assert state_after(deactivated) == {"active": False}
    assert state_after(registered) == {"active": False}
    assert state_after(reactivated) == {"active": False}
    assert state_after(log) == {"active": False}


def test_the_checkpoint_never_moves_back(services: Services) -> None:
    _, log = a_users_life(services)
    store, replica = replica_store(services), fresh_replica()
    assert store.replica_checkpoint(replica.upstream) == ReplicaCheckpoint()

    late = take_in(store, replica, log[3:], stream_seq=9)
    take_in(store, replica, log[:3], stream_seq=4)
    take_in(store, replica, log[3:4], stream_seq=8)

    assert late == ReplicaCheckpoint(log[-1].position, 9)
    assert store.replica_checkpoint(replica.upstream) == late


def test_a_process_serving_both_contexts_sees_each_users_event_at_its_next_lookup(
    services: Services,
) -> None:
    users = services.application(UsersService)
    user = users.register(CTX, "Ada", unique_email()).id
    assert services.orders.replica_state(USERS, user) == {"active": True}

    position = users.deactivate(CTX, user).position
    [tail] = services.feeds
    assert isinstance(tail, StoreTail)
    reached = run_together(6, lambda _: tail.catch_up())  # lookups race: each is safe

    assert all(at >= position for at in reached)
    assert services.orders.replica_state(USERS, user) == {"active": False}
    assert replica_store(services).replica_checkpoint(USERS).position >= position


@pytest.mark.parametrize(
    "settings", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_concurrent_appliers_on_postgresql_neither_deadlock_nor_lose_a_change(
    services: Services,
) -> None:
    expected, log = many_users(services, count=30)
    pages = [log[start : start + 5] for start in range(0, len(log), 5)]
    store, replica = replica_store(services), fresh_replica()

    def apply_all(thread: int) -> None:
        for page in random.Random(thread).sample(pages, len(pages)):
            take_in(store, replica, page, stream_seq=pages.index(page) + 1)

    run_together(8, apply_all)

    for user, active in expected.items():
        assert services.orders.replica_state(replica.upstream, user) == {"active": active}
    assert store.replica_checkpoint(replica.upstream) == ReplicaCheckpoint(
        log[-1].position, len(pages)
    )


def many_users(services: Services, count: int) -> tuple[dict[UUID, bool], list[EventEnvelope]]:
    """`count` users, every third deactivated and every sixth reactivated after that; whether
    each is active, and their events in log order."""
    users, active = services.application(UsersService), {}

    def act() -> None:
        for n in range(count):
            user = users.register(CTX, "Someone", unique_email()).id
            active[user] = True
            if n % 3 == 0:
                users.deactivate(CTX, user)
                active[user] = False
            if n % 6 == 0:
                users.reactivate(CTX, user)
                active[user] = True

    log = users_log(services, act)
    return active, log


def run_together(threads: int, work: Callable[[int], T]) -> list[T]:
    """Run `work(0..threads-1)` in threads released at once; their results, or the first error."""
    start = threading.Barrier(threads)
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait(10)
            results[n] = work(n)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(error)

    workers = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not any(worker.is_alive() for worker in workers), "an applier is stuck"
    if errors:
        raise errors[0]
    return [results[n] for n in range(threads)]
