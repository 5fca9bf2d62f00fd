"""The replica tables of `eventlog.replicas` in an embedded (SQLite) event store: the
PostgreSQL layout of `eventlog.postgres_replicas`, with the state as JSON text; and, as there,
the positions of tracking processes in the checkpoints table, moved by compare-and-set."""

import json
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore

from domain.ports import Tracking
from eventlog.replicas import ReplicaChange, ReplicaCheckpoint, TrackingConflict

CREATE_STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS replicas (upstream TEXT NOT NULL, aggregate_id TEXT NOT NULL,"
    " version INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (upstream, aggregate_id))",
    "CREATE TABLE IF NOT EXISTS replica_checkpoints (upstream TEXT PRIMARY KEY,"
    " position INTEGER NOT NULL, stream_seq INTEGER NOT NULL)",
)


def move_tracked(c: SQLiteCursor, trackings: Sequence[Tracking]) -> None:
    """In the caller's transaction: each tracked position moved if it is still where the
    tracking starts from, else TrackingConflict (the transaction then rolls back). A tracked
    position is never 0, so `after == 0` means that no row exists yet."""
    for tracking in trackings:
        if tracking.after == 0:
            c.execute(
                "INSERT INTO replica_checkpoints (upstream, position, stream_seq) VALUES (?, ?, ?)"
                " ON CONFLICT (upstream) DO NOTHING RETURNING upstream",
                [tracking.upstream, tracking.position, tracking.stream_seq],
            )
        else:
            c.execute(
                "UPDATE replica_checkpoints SET position = ?, stream_seq = ?"
                " WHERE upstream = ? AND position = ? RETURNING upstream",
                [tracking.position, tracking.stream_seq, tracking.upstream, tracking.after],
            )
        if c.fetchone() is None:
            raise TrackingConflict(tracking)


class SQLiteReplicas:
    def __init__(self, datastore: SQLiteDatastore) -> None:
        self._datastore = datastore

    def apply(
        self, upstream: str, changes: Sequence[ReplicaChange], checkpoint: ReplicaCheckpoint
    ) -> None:
        with self._datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO replica_checkpoints (upstream, position, stream_seq)"
                " VALUES (?, ?, ?) ON CONFLICT (upstream) DO UPDATE SET"
                " position = max(position, excluded.position),"
                " stream_seq = max(stream_seq, excluded.stream_seq)",
                [upstream, checkpoint.position, checkpoint.stream_seq],
            )
            c.executemany(
                "INSERT INTO replicas (upstream, aggregate_id, version, state)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (upstream, aggregate_id) DO UPDATE"
                " SET version = excluded.version, state = excluded.state"
                " WHERE version < excluded.version",
                [
                    (upstream, change.aggregate_id.hex, change.version, json.dumps(change.state))
                    for change in changes
                ],
            )

    def checkpoint(self, upstream: str) -> ReplicaCheckpoint:
        row = self._fetch_one(
            "SELECT position, stream_seq FROM replica_checkpoints WHERE upstream = ?", [upstream]
        )
        return ReplicaCheckpoint() if row is None else ReplicaCheckpoint(row[0], row[1])

    def state(self, upstream: str, aggregate_id: UUID) -> Mapping[str, Any] | None:
        row = self._fetch_one(
            "SELECT state FROM replicas WHERE upstream = ? AND aggregate_id = ?",
            [upstream, aggregate_id.hex],
        )
        return None if row is None else dict(json.loads(row[0]))

    def _fetch_one(self, statement: str, params: Sequence[Any]) -> Any:
        with self._datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return c.fetchone()
