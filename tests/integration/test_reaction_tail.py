"""A reaction fed from its upstream's store reads the kinds of events it reacts to alone
(`eventlog.log_pages`), on SQLite and on PostgreSQL: it reacts to each of them once, its
checkpoint moves past every event it ignores (a page of none it needs included), a restart
takes up from the checkpoint, and a crash before the checkpoint moves reacts again to that page
only.

Orders' reaction to users' deactivations is the model; the reactions here record what they are
given under a name of their own, so no other test moves their checkpoints.
"""

from typing import Any, cast
from uuid import UUID, uuid4

import pytest

from domain.orders.known_users import DEACTIVATION, USERS
from domain.service import CommandService
from domain.users.profile import UserProfile
from eventlog.envelope import EventEnvelope, envelope_source
from eventlog.log_pages import page_source
from eventlog.reactions import Reaction, ReactionIntake
from eventlog.replica_feeds import PAGE_SIZE, StoreTail
from eventlog.replicas import ReplicaCheckpoint, ReplicaStore
from eventlog.stores import Services

DEACTIVATIONS = frozenset({DEACTIVATION})


class Crash(Exception):
    """The process died while reacting."""


class Recording:
    """A reaction to deactivations that records the events it is given, its intake and tail
    made anew by `restart` (a new process over the same stores)."""

    def __init__(self, stores: Services) -> None:
        self.stores = stores
        self.reaction = Reaction(USERS, f"test-{uuid4().hex[:8]}", self._react, DEACTIVATIONS)
        self.given: list[EventEnvelope] = []
        self.crash_at: UUID | None = None
        store = cast(ReplicaStore, stores.orders.recorder)
        start = stores.users.recorder.max_notification_id() or 0
        if start:  # PostgreSQL: the session's log, with other tests' deactivations
            store.apply_replica_changes(self.reaction.checkpoint_key, [], ReplicaCheckpoint(start))
        self.restart()

    def restart(self) -> None:
        store = cast(ReplicaStore, self.stores.orders.recorder)
        self.intake = ReactionIntake(self.stores.orders, store, self.reaction)
        self.tail = StoreTail("orders", self.intake, page_source(self.stores.users.recorder))

    def _react(self, _orders: CommandService, event: EventEnvelope) -> None:
        if event.aggregate_id == self.crash_at:
            self.crash_at = None
            raise Crash(f"killed reacting to {event.position}")
        self.given.append(event)

    def checkpoint(self) -> int:
        return self.intake.checkpoint().position


def commit(stores: Services, *parts: list[Any]) -> list[EventEnvelope]:
    """The events of `parts` appended in one transaction, read back from the log."""
    start = stores.users.recorder.max_notification_id() or 0
    stores.users.save(*(event for part in parts for event in part))
    return envelope_source(stores.users.recorder).select_envelopes(USERS, start, 100_000)


def renamed(times: int) -> list[Any]:
    """A user registered and renamed `times` times: `times + 1` events no reaction here needs."""
    profile = registered()
    for n in range(times):
        profile.rename(f"Someone {n}")
    return events_of(profile)


def deactivated(profile: UserProfile) -> list[Any]:
    profile.deactivate()
    return events_of(profile)


def registered() -> UserProfile:
    return UserProfile.register("Someone", f"{uuid4().hex}@example.com")


def events_of(profile: UserProfile) -> list[Any]:
    """The profile's events not yet saved."""
    return cast(list[Any], profile.collect_events())


def deactivation_after_a_page(
    stores: Services, then: int
) -> tuple[UserProfile, list[EventEnvelope]]:
    """A page of events no reaction here needs, a user registered and deactivated, and `then`
    more events not needed, committed at once; the user and the log of them."""
    user = registered()
    ignored = renamed(PAGE_SIZE - 1)
    log = commit(stores, ignored, events_of(user), deactivated(user), renamed(then - 1))
    return user, log


@pytest.mark.timeout(120)
def test_a_tail_reacts_once_among_a_thousand_ignored_events_and_ends_at_the_last(
    stores: Services,
) -> None:
    recording = Recording(stores)
    _, log = deactivation_after_a_page(stores, then=PAGE_SIZE - 1)
    assert len(log) == 1001
    [deactivation] = [e for e in log if e.event_type == "Deactivated"]

    assert recording.tail.catch_up() == log[-1].position

    assert recording.given == [deactivation]
    assert recording.checkpoint() == log[-1].position
    assert recording.tail.catch_up() == log[-1].position  # nothing new: no reaction either
    assert recording.given == [deactivation]


@pytest.mark.timeout(120)
def test_a_restarted_tail_takes_up_from_its_checkpoint(stores: Services) -> None:
    recording = Recording(stores)
    first, second = registered(), registered()
    commit(stores, events_of(first), events_of(second))
    commit(stores, deactivated(first), renamed(300))
    recording.tail.catch_up()
    recording.restart()
    later = commit(stores, renamed(PAGE_SIZE), deactivated(second), renamed(10))

    assert recording.tail.catch_up() == later[-1].position

    assert [e.aggregate_id for e in recording.given] == [first.id, second.id]
    assert recording.checkpoint() == later[-1].position


@pytest.mark.timeout(120)
def test_a_crash_before_the_checkpoint_moves_reacts_again_to_that_page_only(
    stores: Services,
) -> None:
    recording = Recording(stores)
    user, log = deactivation_after_a_page(stores, then=20)
    recording.crash_at = user.id

    with pytest.raises(Crash):
        recording.tail.catch_up()
    assert recording.checkpoint() == log[PAGE_SIZE - 1].position  # past the first page alone
    recording.restart()
    recording.tail.catch_up()

    assert [e.aggregate_id for e in recording.given] == [user.id]
    assert recording.checkpoint() == log[-1].position
