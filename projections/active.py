"""A projector's target that follows the active version of its projection (readmodels.versions).

Every batch runs under the projection's pointer row, locked `FOR SHARE` (SQLite: the write lock
of `BEGIN IMMEDIATE`): a SQL model's batch in that same transaction, a Redis model's pipeline
while it is held. A rebuild's swap locks the row `FOR UPDATE`, so while it verifies no batch
moves the live model; once it commits, the next batch reads the new version and goes there.
Right after the swap the new version's checkpoints equal the old one's (the swap makes them
so), so the feed continues without a gap and without a duplicate.
"""

import threading
from collections.abc import Callable, Sequence
from uuid import UUID

from projections.dead_letters import DeadLetter
from projections.engine import Target
from projections.model import Projection, Step
from projections.sql_target import SqlTarget
from readmodels.checkpoints import Checkpoint
from readmodels.pipeline import run_batch
from readmodels.schema import create_tables
from readmodels.sql import SqlDatabase, Tx
from readmodels.versions import VERSION_TABLES, active_version, ensure_pointer

TargetAt = Callable[[int], Target]
"""The projection's target at a version."""


class ActiveTarget:
    def __init__(self, db: SqlDatabase, name: str, target_at: TargetAt) -> None:
        self._db = db
        self._name = name
        self._target_at = target_at
        self._targets: dict[int, Target] = {}
        self._version = 1
        self._lock = threading.Lock()

    @property
    def version(self) -> int:
        """The active version, as last seen."""
        return self._version

    @property
    def current(self) -> Target:
        return self._at(self._version)

    @property
    def projection(self) -> Projection:
        return self.current.projection

    @property
    def dead_letter_db(self) -> SqlDatabase:
        return self._db

    def prepare(self) -> None:
        with self._db.transaction() as tx:
            create_tables(tx, VERSION_TABLES)
            ensure_pointer(tx, self._name)
            self._version = active_version(tx, self._name)
        self.current.prepare()

    def checkpoint(self, context: str) -> Checkpoint:
        self._refresh()
        return self.current.checkpoint(context)

    def rewind(self, context: str) -> Checkpoint:
        self._refresh()
        return self.current.rewind(context)

    def parked_heads(self, context: str) -> dict[UUID, int]:
        return self.current.parked_heads(context)

    def commit(self, context: str, steps: Sequence[Step]) -> None:
        """Commit to the active version, under its pointer row. A row a swap holds raises
        (LockNotAvailable) instead of waiting: the projector's feed goes on without this
        projection meanwhile, which catches up on its own (projections.feed)."""

        def batch(tx: Tx) -> None:
            self._version = active_version(tx, self._name, lock="share", nowait=True)
            target = self.current
            if isinstance(target, SqlTarget) and target.db is self._db:
                target.commit_in(tx, context, steps)
            else:
                target.commit(context, steps)

        run_batch(self._db, batch)

    def reapply(self, letter: DeadLetter) -> None:
        self._at(letter.version).reapply(letter)

    def _refresh(self) -> None:
        with self._db.transaction(write=False) as tx:
            self._version = active_version(tx, self._name)

    def _at(self, version: int) -> Target:
        with self._lock:
            target = self._targets.get(version)
            if target is None:
                target = self._targets[version] = self._target_at(version)
            return target
