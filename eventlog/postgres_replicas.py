"""The replica tables of `eventlog.replicas` in a PostgreSQL event store's database.

- ``*_replicas``: (upstream, aggregate id) -> the upstream version that set its state, and the
  state (jsonb);
- ``*_replica_checkpoints``: upstream -> the last position and stream sequence taken in.

A page is applied in one transaction, checkpoint first: concurrent feeds of one upstream (one
per process serving the follower) queue on its row, then upsert their rows in id order.

The checkpoints table also holds the positions of processes that track an upstream with their
own events (`SideRecords.tracking`): there the move is a compare-and-set in the transaction of
the events, so that of two processors of one page only one commits.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg import Connection, Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.ports import Tracking
from eventlog.replicas import ReplicaChange, ReplicaCheckpoint, TrackingConflict


class PostgresReplicas:
    def __init__(self, datastore: PostgresDatastore, prefix: str) -> None:
        self._datastore = datastore
        self.relations = (f"{prefix}_replicas", f"{prefix}_replica_checkpoints")
        schema = Identifier(datastore.schema)
        replicas, checkpoints = (Identifier(name) for name in self.relations)
        self.create_statements: list[Composed] = [
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (upstream text NOT NULL,"
                " aggregate_id uuid NOT NULL, version bigint NOT NULL, state jsonb NOT NULL,"
                " PRIMARY KEY (upstream, aggregate_id))"
            ).format(schema, replicas),
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (upstream text PRIMARY KEY,"
                " position bigint NOT NULL, stream_seq bigint NOT NULL)"
            ).format(schema, checkpoints),
        ]
        self._move_checkpoint = SQL(
            "INSERT INTO {0}.{1} AS c (upstream, position, stream_seq) VALUES (%s, %s, %s)"
            " ON CONFLICT (upstream) DO UPDATE SET"
            " position = greatest(c.position, excluded.position),"
            " stream_seq = greatest(c.stream_seq, excluded.stream_seq)"
        ).format(schema, checkpoints)
        self._upsert = SQL(
            "INSERT INTO {0}.{1} AS r (upstream, aggregate_id, version, state)"
            " SELECT %s, * FROM unnest(%s::uuid[], %s::bigint[], %s::jsonb[])"
            " ON CONFLICT (upstream, aggregate_id) DO UPDATE"
            " SET version = excluded.version, state = excluded.state"
            " WHERE r.version < excluded.version"
        ).format(schema, replicas)
        # A tracked position is never 0, so `after == 0` means that no row exists yet.
        self._track_first = SQL(
            "INSERT INTO {}.{} (upstream, position, stream_seq) VALUES (%s, %s, %s)"
            " ON CONFLICT (upstream) DO NOTHING RETURNING upstream"
        ).format(schema, checkpoints)
        self._track = SQL(
            "UPDATE {}.{} SET position = %s, stream_seq = %s WHERE upstream = %s AND position = %s"
            " RETURNING upstream"
        ).format(schema, checkpoints)
        self._select_checkpoint = SQL(
            "SELECT position, stream_seq FROM {}.{} WHERE upstream = %s"
        ).format(schema, checkpoints)
        self._select_state = SQL(
            "SELECT state FROM {}.{} WHERE upstream = %s AND aggregate_id = %s"
        ).format(schema, replicas)

    def apply(
        self, upstream: str, changes: Sequence[ReplicaChange], checkpoint: ReplicaCheckpoint
    ) -> None:
        ordered = sorted(changes, key=lambda change: change.aggregate_id)
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                self._move_checkpoint, [upstream, checkpoint.position, checkpoint.stream_seq]
            )
            if ordered:
                curs.execute(
                    self._upsert,
                    [
                        upstream,
                        [change.aggregate_id for change in ordered],
                        [change.version for change in ordered],
                        [json.dumps(change.state) for change in ordered],
                    ],
                )

    def track(
        self, conn: Connection[DictRow], trackings: Sequence[Tracking]
    ) -> list[Cursor[DictRow]]:
        """In the caller's (pipelined) transaction: each tracked position moved if it is still
        where the tracking starts from. `check_tracked` reads the outcome, once the events
        are written too, so the whole commit still takes one round trip."""
        cursors = []
        for tracking in trackings:
            curs = conn.cursor()
            if tracking.after == 0:
                params = [tracking.upstream, tracking.position, tracking.stream_seq]
                curs.execute(self._track_first, params, prepare=True)
            else:
                params = [tracking.position, tracking.stream_seq, tracking.upstream, tracking.after]
                curs.execute(self._track, params, prepare=True)
            cursors.append(curs)
        return cursors

    @staticmethod
    def check_tracked(trackings: Sequence[Tracking], cursors: Sequence[Cursor[DictRow]]) -> None:
        """Raise TrackingConflict if a tracked position had moved (the transaction then rolls
        back)."""
        for tracking, curs in zip(trackings, cursors, strict=True):
            moved = curs.fetchone() is not None
            curs.close()
            if not moved:
                raise TrackingConflict(tracking)

    def checkpoint(self, upstream: str) -> ReplicaCheckpoint:
        with self._datastore.transaction(commit=False) as curs:
            row = curs.execute(self._select_checkpoint, [upstream], prepare=True).fetchone()
        if row is None:
            return ReplicaCheckpoint()
        return ReplicaCheckpoint(row["position"], row["stream_seq"])

    def state(self, upstream: str, aggregate_id: UUID) -> Mapping[str, Any] | None:
        with self._datastore.transaction(commit=False) as curs:
            row = curs.execute(
                self._select_state, [upstream, aggregate_id], prepare=True
            ).fetchone()
        return None if row is None else dict(row["state"])
