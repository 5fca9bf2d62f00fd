"""How far a streaming replica of the read database is behind its primary, asked of the replica
alone (the read API serving from a replica does not connect to the primary).

- `lag_bytes`: WAL received from the primary but not replayed yet
  (`pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())`);
- `lag_seconds`: 0 when everything received is replayed, else the age of the last replayed
  commit (`clock_timestamp() - pg_last_xact_replay_timestamp()`): how old the data served is;
- `replay_paused`: `pg_wal_replay_pause()` was called (an operator, or a recovery target).

A server that is not in recovery (a promoted replica, or a primary named by mistake) has no lag.
WAL that never reached the replica (the primary unreachable) shows in none of these: the
checkpoints the read API reads then stop moving, and read-your-writes waits answer 503.
"""

from dataclasses import dataclass

from readmodels.sql import SqlDatabase

STATUS_QUERY = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,
       CASE
         WHEN NOT pg_is_in_recovery() THEN 0
         WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
         ELSE COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0)
       END,
       COALESCE(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)
"""


@dataclass(frozen=True)
class ReplicaStatus:
    in_recovery: bool
    replay_paused: bool
    lag_seconds: float
    lag_bytes: int

    def describe(self) -> str:
        """`replays 3.2 s (4096 bytes) behind its primary, replay paused`, for a problem's
        detail."""
        if not self.in_recovery:
            return "is not in recovery (promoted?)"
        paused = ", replay paused" if self.replay_paused else ""
        return f"replays {self.lag_seconds:.1f} s ({self.lag_bytes} bytes) behind{paused}"

    def as_json(self) -> dict[str, object]:
        return {
            "in_recovery": self.in_recovery,
            "replay_paused": self.replay_paused,
            "lag_seconds": round(self.lag_seconds, 3),
            "lag_bytes": self.lag_bytes,
        }


class ReplicaProbe:
    """Reads the status of the replica behind `database` (one round trip)."""

    def __init__(self, database: SqlDatabase) -> None:
        self._database = database

    def status(self) -> ReplicaStatus:
        with self._database.transaction(write=False) as tx:
            row = tx.query_one(STATUS_QUERY)
        assert row is not None
        in_recovery, paused, seconds, lag_bytes = row
        return ReplicaStatus(bool(in_recovery), bool(paused), float(seconds), int(lag_bytes))
