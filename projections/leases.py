"""Partition leases: which projector worker consumes which `pNN` partitions.

Each worker holds one PostgreSQL session (in the read database, with TCP keepalives, as
projections/leader.py does for the single leader) and on it:

- **Membership:** a *shared* advisory lock on (key, MEMBERS). The live workers are the sessions
  holding it (`pg_locks`), so a worker that dies leaves the count when its session ends (at once
  for a crash, within seconds of keepalives for a network split); no heartbeat row to expire.
- **A lease per partition:** an exclusive advisory lock on (key, partition). Only its holder
  consumes the partition; the session's end releases it.
- **A fencing epoch per partition:** taking a lease bumps `projector_leases.epoch` (same
  database as the checkpoints). The holder writes its epoch with every partition checkpoint,
  and a write carrying an older epoch than the row's is refused
  (`readmodels.partition_checkpoints`): a worker that lost its lease without noticing (its
  session was cut while it was inside a batch) cannot commit once the new holder has.

Rebalancing (`rebalance()`, called by each worker every few seconds): the fair share is
ceil(partitions / live workers). A worker over its share names the surplus (`surplus()`); it stops
consuming those partitions, then `release()`s them. A worker under its share tries the free
partitions until it has its share. Shares sum to at least the partition count, so every
partition finds a holder once the workers have each run one round.

Why PostgreSQL and not NATS KV with a TTL: a session's end is noticed by the server itself (no
TTL to tune against pauses), the lock and the checkpoint fence live in the database the batches
commit to, and the single-leader lock already works this way.
"""

import math
import zlib
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import make_conninfo

from eventlog.envelope import PARTITIONS

MEMBERS = PARTITIONS + 1_000_000
"""The second key of the members' shared lock (outside any partition number)."""

LEASES_TABLE = """
CREATE TABLE IF NOT EXISTS projector_leases (
    namespace text NOT NULL,
    partition int NOT NULL,
    epoch bigint NOT NULL,
    holder text NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, partition)
)"""


MEMBERS_QUERY = (
    "SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 2"
)
"""The sessions holding a namespace's members' lock: its live workers."""


class LeaderPresent(psycopg.OperationalError):
    """A projector of the single mode is consuming: workers wait until it is gone."""


def fair_share(partitions: int, members: int) -> int:
    """How many partitions one of `members` live workers should hold."""
    return math.ceil(partitions / max(members, 1))


def lock_key(namespace: str) -> int:
    """The first key of the advisory locks of a namespace (a positive int4)."""
    return zlib.crc32(f"strata-projector-partitions:{namespace}".encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class Lease:
    partition: int
    epoch: int
    """Higher than every earlier holder's: the fence of this holder's checkpoint writes."""


@dataclass(frozen=True)
class Round:
    """What one rebalancing round did and found."""

    members: int
    acquired: tuple[Lease, ...]


class PartitionLeases:
    def __init__(
        self,
        database_url: str,
        namespace: str,
        worker: str,
        *,
        partitions: int = PARTITIONS,
        exclusive_of: str | None = None,
    ) -> None:
        """`exclusive_of`: the single projector's leader lock name (projections/leader.py); a
        member holds it shared, so the two modes never consume at once."""
        self.namespace = namespace
        self._exclusive_of = exclusive_of
        self.worker = worker
        self.partitions = partitions
        self._key = lock_key(namespace)
        self._conninfo = make_conninfo(
            database_url,
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
            application_name=f"strata-projector-worker:{worker}"[:63],
        )
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.held: dict[int, Lease] = {}

    @property
    def joined(self) -> bool:
        return self._conn is not None

    def join(self) -> None:
        """Open the session and count as a member. Raises psycopg.Error if the database cannot
        be reached."""
        if self._conn is not None:
            return
        conn = psycopg.connect(self._conninfo, autocommit=True)
        try:
            conn.execute("SET tcp_keepalives_idle = 5")  # the server notices a vanished worker
            with conn.transaction():  # CREATE TABLE IF NOT EXISTS races with itself
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", [self._key, MEMBERS + 1])
                conn.execute(LEASES_TABLE)
            if self._exclusive_of is not None:
                row = conn.execute(
                    "SELECT pg_try_advisory_lock_shared(hashtext(%s))", [self._exclusive_of]
                ).fetchone()
                if not (row and row[0]):
                    raise LeaderPresent(
                        f"a single-mode projector holds {self._exclusive_of!r}: not joining"
                    )
            conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", [self._key, MEMBERS])
        except psycopg.Error:
            conn.close()
            raise
        self._conn = conn

    def members(self) -> int:
        """The live workers of the namespace (this one included)."""
        return _count_members(self._session(), self._key)

    def share(self) -> int:
        return fair_share(self.partitions, self.members())

    def surplus(self) -> list[int]:
        """The partitions this worker holds beyond its fair share (the highest numbers): stop
        consuming them, then `release()` each."""
        excess = len(self.held) - self.share()
        return sorted(self.held)[-excess:] if excess > 0 else []

    def rebalance(self) -> Round:
        """Take free partitions until this worker holds its fair share. Raises psycopg.Error if
        the session is gone (every lease is then lost: `close()`, stop consuming, `join()`)."""
        members = self.members()
        wanted = fair_share(self.partitions, members) - len(self.held)
        acquired: list[Lease] = []
        for partition in range(self.partitions):
            if len(acquired) >= wanted:
                break
            if partition not in self.held and self._try_lock(partition):
                acquired.append(self._take(partition))
        return Round(members, tuple(acquired))

    def release(self, partition: int) -> None:
        """Give a partition up (after this worker stopped consuming it)."""
        if self.held.pop(partition, None) is not None:
            self._session().execute("SELECT pg_advisory_unlock(%s, %s)", [self._key, partition])

    def still_held(self) -> bool:
        """False once the session is gone: every lease is lost; stop writing."""
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            self.close()
            return False
        return True

    def close(self) -> None:
        """End the session: every lease and the membership are released."""
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self.held = {}

    def _session(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None:
            raise psycopg.OperationalError("not joined: no lease session")
        return self._conn

    def _try_lock(self, partition: int) -> bool:
        row = (
            self._session()
            .execute("SELECT pg_try_advisory_lock(%s, %s)", [self._key, partition])
            .fetchone()
        )
        return bool(row and row[0])

    def _take(self, partition: int) -> Lease:
        row = (
            self._session()
            .execute(
                "INSERT INTO projector_leases (namespace, partition, epoch, holder)"
                " VALUES (%s, %s, 1, %s) ON CONFLICT (namespace, partition) DO UPDATE"
                " SET epoch = projector_leases.epoch + 1, holder = EXCLUDED.holder,"
                " taken_at = now()"
                " RETURNING epoch",
                [self.namespace, partition, self.worker],
            )
            .fetchone()
        )
        assert row is not None
        lease = self.held[partition] = Lease(partition, int(str(row[0])))
        return lease


def _count_members(conn: "psycopg.Connection[tuple[object, ...]]", key: int) -> int:
    row = conn.execute(MEMBERS_QUERY, [key, MEMBERS]).fetchone()
    return int(str(row[0])) if row else 0
