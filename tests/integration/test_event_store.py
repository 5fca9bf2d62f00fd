"""The event store's side records and group commit, on SQLite and on PostgreSQL."""

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from contexts.settings import Settings
from domain.ports import SideRecords, UnitOfWork
from domain.service import CommandContext
from domain.users.profile import UserProfile
from domain.users.service import UsersService, email_claim
from eventlog.group_commit import GroupCommitter
from eventlog.stores import Services, build_services
from tests.support.aggregates import collected, stored_events
from tests.support.postgres import url_settings

NO_CONTEXT = CommandContext()


@pytest.fixture
def stores(settings: Settings) -> Iterator[Services]:
    built = build_services(settings.model_copy(update={"group_commit": False}))
    yield built
    built.close()


def _registration(email: str) -> UnitOfWork:
    profile = UserProfile.register("Someone", email)
    return UnitOfWork(
        collected(profile), SideRecords(claims=[email_claim(profile.email, profile.id)])
    )


def test_a_rejected_side_record_rolls_back_the_events_of_its_transaction(
    stores: Services,
) -> None:
    email = f"{uuid4().hex}@example.com"
    stores.application(UsersService).register(NO_CONTEXT, "First", email)
    before = stores.users.recorder.max_notification_id()

    duplicate = _registration(email)
    with pytest.raises(IntegrityError):
        stores.users.save(*duplicate.events, side_records=duplicate.side_records)

    assert stores.users.recorder.max_notification_id() == before


def test_the_time_index_resolves_any_instant_to_the_version_then_current(
    stores: Services,
) -> None:
    user = (
        stores.application(UsersService)
        .register(NO_CONTEXT, "Ada", f"{uuid4().hex}@example.com")
        .id
    )
    for name in ("B", "C", "D"):
        time.sleep(0.002)
        stores.application(UsersService).rename(NO_CONTEXT, user, name)
    events = stored_events(stores.users, user)
    index = stores.users.side_records

    assert index.version_at(user, events[0].timestamp - timedelta(microseconds=1)) is None
    for event in events:
        assert index.version_at(user, event.timestamp) == event.originator_version
        just_before = event.timestamp - timedelta(microseconds=1)
        expected_before = event.originator_version - 1 or None
        assert index.version_at(user, just_before) == expected_before
    assert index.version_at(user, events[-1].timestamp + timedelta(days=1)) == len(events)


def test_positions_of_recorded_events_are_found_and_unknown_ones_are_none(
    stores: Services,
) -> None:
    result = stores.application(UsersService).register(
        NO_CONTEXT, "Ada", f"{uuid4().hex}@example.com"
    )
    assert stores.users.side_records.position_of(result.id, 1) == result.position
    assert stores.users.side_records.position_of(result.id, 2) is None


def test_a_shared_transaction_with_a_conflict_falls_back_to_one_per_unit(
    stores: Services,
) -> None:
    taken = f"{uuid4().hex}@example.com"
    units = [
        _registration(f"{uuid4().hex}@example.com"),
        _registration(taken),
        _registration(taken),  # loses: the address is claimed by the unit before it
        _registration(f"{uuid4().hex}@example.com"),
    ]
    before = stores.users.recorder.max_notification_id() or 0
    committer = GroupCommitter(stores.users, max_batch=10)
    futures = [committer.submit(unit) for unit in units]  # queued before the writer starts
    committer.start()

    outcomes = [future.exception() or future.result() for future in futures]
    committer.close()

    assert isinstance(outcomes[2], IntegrityError)
    saved = [o for o in outcomes if isinstance(o, list)]
    assert len(saved) == 3
    positions = [recording.notification.id for recordings in saved for recording in recordings]
    assert positions == sorted(positions) and positions[0] > before
    assert stores.users.recorder.max_notification_id() == positions[-1]


def test_a_shared_transaction_hands_each_unit_its_own_recordings(stores: Services) -> None:
    units = [_registration(f"{uuid4().hex}@example.com") for _ in range(5)]
    committer = GroupCommitter(stores.users, max_batch=10)
    futures = [committer.submit(unit) for unit in units]
    committer.start()
    results = [future.result() for future in futures]
    committer.close()

    for unit, recordings in zip(units, results, strict=True):
        assert [r.domain_event for r in recordings] == list(unit.events)
    positions = [r.notification.id for recordings in results for r in recordings]
    assert len(set(positions)) == 5


@pytest.mark.postgres
def test_starting_beside_appends_in_flight_takes_no_lock_on_existing_tables(
    postgres_stores: dict[str, str],
) -> None:
    """A replica starting under load must not queue DDL behind (or deadlock with) appends."""
    settings = Settings(**url_settings(postgres_stores))
    build_services(settings).close()  # the tables exist from here on
    with psycopg.connect(postgres_stores["users"]) as append_in_flight:
        append_in_flight.execute("LOCK TABLE users_events IN EXCLUSIVE MODE")
        starting = threading.Thread(target=lambda: build_services(settings).close())
        starting.start()
        starting.join(timeout=2.0)
        blocked = starting.is_alive()
        append_in_flight.rollback()
    starting.join()
    assert not blocked, "start-up waited for the events table lock"
