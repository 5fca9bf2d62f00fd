"""Partition leases on a real PostgreSQL (projections/leases.py) and the per-partition
checkpoints they fence (readmodels/partition_checkpoints.py): two workers split the
partitions, a worker killed with SIGKILL has its partitions taken over under newer epochs, a
joining worker gets its share, and a holder whose lease was taken over cannot commit."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from projections.leader import LeaderLock
from projections.leases import LeaderPresent, PartitionLeases, fair_share
from readmodels.catalog import ORDERS
from readmodels.checkpoints import Checkpoint
from readmodels.partition_checkpoints import (
    LeaseLost,
    ensure_partition_checkpoint,
    partition_slot,
    read_all_positions,
    read_partition_checkpoint,
    write_partition_checkpoint,
)
from readmodels.schema import SHARED_TABLES, create_tables
from readmodels.sql import PostgresDatabase
from tests.support.postgres import require_postgres, scratch_databases

PARTITIONS = 16
NAMESPACE = "leasetest"
ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
from projections.leases import PartitionLeases
leases = PartitionLeases(sys.argv[1], sys.argv[2], "doomed")
leases.join()
while len(leases.held) < leases.share():
    leases.rebalance()
    time.sleep(0.05)
print(",".join(str(p) for p in sorted(leases.held)), flush=True)
time.sleep(600)
"""


@pytest.fixture
def read_url() -> Iterator[str]:
    with scratch_databases(require_postgres(), "read") as urls:
        yield urls["read"]


@pytest.fixture
def workers(read_url: str) -> Iterator[list[PartitionLeases]]:
    made: list[PartitionLeases] = []
    yield made
    for worker in made:
        worker.close()


def worker(read_url: str, made: list[PartitionLeases], name: str) -> PartitionLeases:
    leases = PartitionLeases(read_url, NAMESPACE, name, partitions=PARTITIONS)
    leases.join()
    made.append(leases)
    return leases


def settle(workers: Sequence[PartitionLeases], timeout: float = 10.0) -> None:
    """Run rebalancing rounds (each worker gives up its surplus, then takes its share) until
    every partition has one holder and each worker holds its fair share."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for leases in workers:
            for partition in leases.surplus():
                leases.release(partition)
            leases.rebalance()
        held = [p for leases in workers for p in leases.held]
        share = fair_share(PARTITIONS, len(workers))
        if sorted(held) == list(range(PARTITIONS)) and all(
            len(leases.held) <= share for leases in workers
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"no balance: {[sorted(w.held) for w in workers]}")


def test_fair_share_covers_every_partition() -> None:
    assert [fair_share(16, n) for n in (0, 1, 2, 3, 5, 16, 20)] == [16, 16, 8, 6, 4, 1, 1]
    assert all(fair_share(p, n) * n >= p for p in range(1, 40) for n in range(1, 40))


def test_the_single_projector_and_workers_exclude_each_other(read_url: str) -> None:
    """A worker holds the single mode's leader lock shared while it is a member: no leader
    while workers consume, and no worker joins while a leader does."""
    name = "strata-projector:leasetest"
    leader = LeaderLock(read_url, name)
    member = PartitionLeases(read_url, NAMESPACE, "member", exclusive_of=name)
    try:
        member.join()
        assert not leader.try_acquire()
        member.close()  # its session ends (the server notices within moments)
        assert _eventually(leader.try_acquire)
        with pytest.raises(LeaderPresent):
            member.join()
        assert not member.joined
    finally:
        member.close()
        leader.release()


def _eventually(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_two_workers_split_the_partitions(read_url: str, workers: list[PartitionLeases]) -> None:
    first = worker(read_url, workers, "a")
    second = worker(read_url, workers, "b")
    assert first.members() == second.members() == 2
    settle(workers)
    assert len(first.held) == len(second.held) == 8
    assert not set(first.held) & set(second.held)


def test_a_killed_worker_is_taken_over_with_newer_epochs(
    read_url: str, workers: list[PartitionLeases]
) -> None:
    doomed = subprocess.Popen(
        [sys.executable, "-c", HOLDER, read_url, NAMESPACE],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert doomed.stdout is not None
        doomed_held = {int(p) for p in doomed.stdout.readline().split(",")}
        survivor = worker(read_url, workers, "survivor")
        assert len(doomed_held) == PARTITIONS  # it was alone when it took its share
        assert survivor.members() == 2
        assert survivor.rebalance().acquired == ()  # all taken: nothing for the survivor yet
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        settle(workers)
    finally:
        doomed.kill()
    assert survivor.members() == 1
    assert sorted(survivor.held) == list(range(PARTITIONS))
    assert {lease.epoch for lease in survivor.held.values()} == {2}  # the dead worker had 1


def test_a_joining_worker_gets_its_share(read_url: str, workers: list[PartitionLeases]) -> None:
    old = worker(read_url, workers, "old")
    settle(workers)
    assert len(old.held) == PARTITIONS
    new = worker(read_url, workers, "new")
    assert new.rebalance().acquired == ()  # nothing free until the old one gives up its surplus
    assert old.surplus() == list(range(8, 16))
    settle(workers)
    assert sorted(old.held) == list(range(8))
    assert sorted(new.held) == list(range(8, 16))
    old.close()  # a worker that leaves: the other takes everything back
    workers.remove(old)
    settle(workers)
    assert sorted(new.held) == list(range(PARTITIONS))


def test_a_stale_holder_cannot_commit_after_the_new_one(
    read_url: str, workers: list[PartitionLeases]
) -> None:
    stale = worker(read_url, workers, "stale")
    settle(workers)
    stale_epoch = stale.held[3].epoch
    db = PostgresDatabase(read_url, pool_size=1, timeout=5.0)
    try:
        with db.transaction() as tx:
            create_tables(tx, SHARED_TABLES)
            for partition in range(PARTITIONS):
                ensure_partition_checkpoint(tx, "orders", 1, "orders", partition)
            write_partition_checkpoint(tx, "orders", 1, "orders", 3, Checkpoint(10, 4), stale_epoch)
        # The stale holder's session is cut (it does not notice); a new holder takes over.
        with db.transaction() as tx:
            tx.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'strata-projector-worker:stale'"
            )
        heir = worker(read_url, workers, "heir")
        settle([heir])
        assert heir.held[3].epoch == stale_epoch + 1
        with db.transaction() as tx:
            write_partition_checkpoint(
                tx, "orders", 1, "orders", 3, Checkpoint(12, 6), heir.held[3].epoch
            )
        with pytest.raises(LeaseLost), db.transaction() as tx:
            write_partition_checkpoint(tx, "orders", 1, "orders", 3, Checkpoint(11, 5), stale_epoch)
        assert not stale.still_held()
        with db.transaction(write=False) as tx:
            assert read_partition_checkpoint(tx, "orders", 1, "orders", 3) == Checkpoint(12, 6)
            positions = read_all_positions(tx, [ORDERS])
    finally:
        db.close()
    assert positions[("orders", partition_slot("orders", 3))] == 12
    assert positions[("orders", "orders")] == 0  # the other partitions: nothing yet
