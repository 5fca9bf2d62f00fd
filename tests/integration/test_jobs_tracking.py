"""Tracking, on SQLite and on PostgreSQL: a process's position in an upstream's log moves in
the transaction of the effects it caused, and only from where it was read, so a page is taken
in exactly once however many processors race for it."""

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast
from uuid import uuid4

import pytest

from domain.ports import Job, SideRecords, Tracking, UnitOfWork
from domain.users.profile import UserProfile
from domain.users.service import email_claim
from eventlog.envelope import EventEnvelope, envelope_source
from eventlog.group_commit import GroupCommitter
from eventlog.jobs import JobStore
from eventlog.log_pages import Kinds, page_source
from eventlog.replica_feeds import StoreTail
from eventlog.replicas import ReplicaCheckpoint, ReplicaStore, TrackingConflict, page_end
from eventlog.stores import Services

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _registration(tracking: Sequence[Tracking] = (), *, deactivated: bool = False) -> UnitOfWork:
    profile = UserProfile.register("Someone", f"{uuid4().hex}@example.com")
    if deactivated:
        profile.deactivate()
    claims = [email_claim(profile.email, profile.id)]
    events = cast("list[Any]", profile.collect_events())
    return UnitOfWork(events, SideRecords(claims=claims, tracking=tracking))


def _commit(stores: Services, unit: UnitOfWork) -> None:
    stores.users.save(*unit.events, side_records=unit.side_records)


def _events_after(stores: Services, position: int) -> int:
    """How many events were committed after a position (PostgreSQL positions have gaps)."""
    return len(envelope_source(stores.users.recorder).select_envelopes("users", position, 100_000))


def _tracked(stores: Services, upstream: str) -> ReplicaCheckpoint:
    return cast(ReplicaStore, stores.users.recorder).replica_checkpoint(upstream)


def test_a_tracked_position_moves_only_from_where_the_tracking_starts(stores: Services) -> None:
    upstream = f"up-{uuid4().hex[:8]}"
    _commit(stores, _registration([Tracking(upstream, 10, 3)]))
    assert _tracked(stores, upstream) == ReplicaCheckpoint(10, 3)

    for stale in (Tracking(upstream, 12, 4), Tracking(upstream, 30, 5, after=7)):
        with pytest.raises(TrackingConflict):
            _commit(stores, _registration([stale]))
    _commit(stores, _registration([Tracking(upstream, 20, 4, after=10)]))

    assert _tracked(stores, upstream) == ReplicaCheckpoint(20, 4)


def test_a_tracking_conflict_writes_nothing_of_its_commit(stores: Services) -> None:
    upstream, kind = f"up-{uuid4().hex[:8]}", f"test-{uuid4().hex[:8]}"
    _commit(stores, _registration([Tracking(upstream, 10)]))
    before = stores.users.recorder.max_notification_id() or 0
    late = _registration([Tracking(upstream, 20, after=0)])
    jobs = [Job(kind, "effect", T0)]

    with pytest.raises(TrackingConflict):
        stores.users.save(
            *late.events,
            side_records=SideRecords(
                claims=late.side_records.claims, tracking=late.side_records.tracking, jobs=jobs
            ),
        )

    assert _events_after(stores, before) == 0
    assert cast(JobStore, stores.users.recorder).next_due(kind) is None
    assert _tracked(stores, upstream) == ReplicaCheckpoint(10)


@pytest.mark.postgres
@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
@pytest.mark.timeout(60)
def test_of_processors_racing_for_one_page_exactly_one_commits(stores: Services) -> None:
    upstream, racers = f"up-{uuid4().hex[:8]}", 8
    _commit(stores, _registration([Tracking(upstream, 10)]))
    before = stores.users.recorder.max_notification_id() or 0
    start = threading.Barrier(racers)
    outcomes: list[str] = []

    def process_page() -> None:
        unit = _registration([Tracking(upstream, 20, after=10)])
        start.wait()
        try:
            _commit(stores, unit)
        except TrackingConflict:
            outcomes.append("conflict")
        else:
            outcomes.append("committed")

    threads = [threading.Thread(target=process_page) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["committed"] + ["conflict"] * (racers - 1)
    assert _events_after(stores, before) == 1
    assert _tracked(stores, upstream).position == 20


def test_a_group_commit_keeps_chained_trackings_and_fails_only_the_stale_one(
    stores: Services,
) -> None:
    upstream = f"up-{uuid4().hex[:8]}"
    units = [
        _registration([Tracking(upstream, 10)]),
        _registration([Tracking(upstream, 20, after=10)]),
        _registration([Tracking(upstream, 30, after=10)]),  # stale: 10 is taken in by now
    ]
    before = stores.users.recorder.max_notification_id() or 0
    committer = GroupCommitter(stores.users, max_batch=10)
    futures = [committer.submit(unit) for unit in units]
    committer.start()
    errors = [future.exception() for future in futures]
    committer.close()

    assert [type(error) for error in errors] == [type(None), type(None), TrackingConflict]
    assert _events_after(stores, before) == 2
    assert _tracked(stores, upstream).position == 20


class JobPerEvent:
    """A tracked intake: each upstream event of its kinds it takes in becomes a job of the
    follower's store, committed with the tracking (the shape of a process manager's intake)."""

    upstream = "users"

    def __init__(self, follower: Services, key: str, kind: str, kinds: Kinds = None) -> None:
        self._follower = follower
        self._key = key
        self._kind = kind
        self.kinds = kinds
        self.taken_in: list[int] = []

    def checkpoint(self) -> ReplicaCheckpoint:
        return cast(ReplicaStore, self._follower.orders.recorder).replica_checkpoint(self._key)

    def take_in(
        self, envelopes: Sequence[EventEnvelope], stream_seq: int = 0, *, reached: int = 0
    ) -> ReplicaCheckpoint | None:
        end = page_end(envelopes, reached)
        if not end:
            return None
        checkpoint = self.checkpoint()
        if end <= checkpoint.position:
            return checkpoint
        new = [envelope for envelope in envelopes if envelope.position > checkpoint.position]
        tracking = Tracking(self._key, end, stream_seq, after=checkpoint.position)
        jobs = [Job(self._kind, str(envelope.position), T0) for envelope in new]
        self._follower.orders.save(side_records=SideRecords(jobs=jobs, tracking=[tracking]))
        self.taken_in.extend(envelope.position for envelope in new)
        return ReplicaCheckpoint(tracking.position, stream_seq)


DEACTIVATED: Kinds = frozenset({("UserProfile", "Deactivated")})


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kinds", [None, DEACTIVATED], ids=["every kind", "deactivations"])
def test_two_feeds_of_one_tracked_intake_take_each_event_in_once(
    stores: Services, kinds: Kinds
) -> None:
    """With kinds, the log ends with events the intake does not need: its tracked position
    moves past them all the same."""
    before = stores.users.recorder.max_notification_id() or 0
    for n in range(12):
        _commit(stores, _registration(deactivated=n % 4 == 1))
    log = envelope_source(stores.users.recorder).select_envelopes("users", before, 100_000)
    key, kind = f"users-jobs-{uuid4().hex[:8]}", f"test-{uuid4().hex[:8]}"
    if before:  # PostgreSQL: the session's log, with other tests' events before
        stores.orders.save(side_records=SideRecords(tracking=[Tracking(key, before)]))
    intake = JobPerEvent(stores, key, kind, kinds)
    tails = [StoreTail("orders", intake, page_source(stores.users.recorder), page_size=5)]
    tails.append(StoreTail("orders", intake, page_source(stores.users.recorder), page_size=3))

    def follow(tail: StoreTail) -> None:
        while True:  # what a feed's loop does after a conflict: read again from the checkpoint
            try:
                tail.catch_up()
            except TrackingConflict:
                continue
            return

    threads = [threading.Thread(target=follow, args=[tail]) for tail in tails]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    wanted = [e for e in log if kinds is None or (e.aggregate_type, e.event_type) in kinds]
    positions = [envelope.position for envelope in wanted]
    assert len(positions) == (15 if kinds is None else 3)  # 12 registered, 3 deactivated
    assert sorted(intake.taken_in) == positions
    assert intake.checkpoint().position == log[-1].position
    jobs = cast(JobStore, stores.orders.recorder).claim_due_jobs(kind, T0, 100_000, T0 - T0)
    assert sorted(int(job.key) for job in jobs) == positions
