"""Blue/green rebuild of a read model from the event stores (docs/read-models.md, "Versions").

`Rebuilder.rebuild(name)`:

1. **Plan.** The live version k is the pointer's (`rm_active`); the shadow is version k+1, or
   the version of an unfinished rebuild of the same projection (resume).
2. **Lock** per (projection, version): a PostgreSQL session advisory lock, or an exclusive
   `flock` on `<data_dir>/rebuild-<proj>-v<k>.lock` in the embedded mode. Both die with the
   process, so a killed rebuild can be resumed at once.
3. **Backfill** the shadow from each context's event store in large keyset pages, folded per
   key in memory and written in bulk (projections.bulk_rebuild: `COPY`, Redis pipelines), with
   the shadow's checkpoints every few pages; a shadow resumed past its start (or a document
   model in SQLite) goes on event by event, one commit per page. Then **catch up** until a pass
   finds fewer than `CATCH_UP_THRESHOLD` new events.
4. **Verify and swap**, in one transaction of the read database that locks the projection's
   pointer row `FOR UPDATE`: the projectors (projections.active) hold it `FOR SHARE` around every
   batch, so the live model stops moving. Both models are caught up to the stores' current heads
   (the same position), their contents compared row by row in key order
   (projections.verify, bounded memory) with a SHA-256 checksum, the shadow's checkpoints given the
   live positions and the stream sequence every partition had reached (projections.
   rebuild_checkpoints), and the pointer flipped. A mismatch rolls back and leaves live
   untouched (:class:`VerifyFailed`).

The events a person skipped in the live version are skipped in the shadow too (copied as its own
`skipped` dead letters before the backfill, again before the swap): a skip is honoured on every
re-projection, and the shadow must equal live.

`rebuild(name, at=T)` builds an **audit** version instead: only events with timestamp ≤ T,
up to the heads at the start; it is never made active. `retire(name)` drops the versions a swap
left behind.
"""

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from projections import dead_letters
from projections.bulk_rebuild import KEYS_IN_MEMORY, BulkBackfill, bulk_capable, unlink_prefix
from projections.engine import Engine, RetryPolicy, Target
from projections.model import Message, Projection, SqlProjection
from projections.rebuild_checkpoints import partition_floors, stream_seq_reached
from projections.rebuild_reports import (
    Plan,
    Progress,
    RebuildError,
    Result,
    UnknownProjection,
    VerifyFailed,
)
from projections.rebuild_targets import ReadModels
from projections.redis_target import RedisDocumentTarget
from projections.sql_target import SqlProjectionTarget
from projections.targets import find_projection
from projections.verify import compare, fingerprint
from readmodels.checkpoints import Checkpoint, write_checkpoint
from readmodels.schema import SHARED_TABLES, create_tables
from readmodels.sql import Tx
from readmodels.versions import (
    VersionRecord,
    active_version,
    active_versions,
    ensure_pointer,
    forget,
    next_version,
    records,
    register,
    set_active,
    set_status,
)

PAGE_SIZE = 20_000
CATCH_UP_THRESHOLD = 1000
"""Stop catching up outside the lock once a pass reads fewer new events than this."""
MAX_CATCH_UP_PASSES = 20
RETIRE_GRACE = timedelta(seconds=5)
"""The read API trusts a resolved pointer for 0.25 s; retiring waits well beyond that."""


class _Quiet:
    def start(self, context: str, total: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass


class Rebuilder:
    def __init__(
        self,
        models: ReadModels,
        *,
        page_size: int = PAGE_SIZE,
        policy: RetryPolicy | None = None,
        progress: Progress | None = None,
        keys_in_memory: int = KEYS_IN_MEMORY,
    ) -> None:
        self.models = models
        self.page_size = page_size
        self.keys_in_memory = keys_in_memory
        self.policy = policy
        self.progress: Progress = progress or _Quiet()

    # -- planning ---------------------------------------------------------------------------

    def projection(self, name: str) -> Projection:
        projection = find_projection(name, self.models.projections)
        if projection is None:
            raise UnknownProjection(f"unknown projection {name!r}")
        return projection

    def plan(self, name: str, *, at: datetime | None = None, dry_run: bool = False) -> Plan:
        """What a rebuild would do; without `dry_run`, also register the shadow version."""
        projection = self.projection(name)
        kind = "rebuild" if at is None else "audit"
        db = self.models.db
        if dry_run:
            live, version, resumed = self._peek(name, kind, at)
        else:
            with db.transaction() as tx:
                create_tables(tx, SHARED_TABLES)
                ensure_pointer(tx, name)
                live = active_version(tx, name)
                unfinished = _unfinished(records(tx, name), kind, at)
                resumed = unfinished is not None
                version = unfinished.version if unfinished else next_version(tx, name)
                register(tx, name, version, "rebuild" if at is None else "audit", at)
        shadow = self.models.target(projection, version)
        done = dict.fromkeys(projection.contexts, 0)
        if resumed:
            done = self._done(projection, shadow)
        heads = {c: self.models.heads(c) for c in projection.contexts}
        return Plan(
            name, kind, live, version, resumed, at, self.models.describe(shadow), heads, done
        )

    def _peek(self, name: str, kind: str, at: datetime | None) -> tuple[int, int, bool]:
        try:
            with self.models.db.transaction(write=False) as tx:
                live = active_version(tx, name)
                unfinished = _unfinished(records(tx, name), kind, at)
                if unfinished is not None:
                    return live, unfinished.version, True
                return live, next_version(tx, name), False
        except Exception as error:  # no bookkeeping tables yet: nothing was ever rebuilt
            if self.models.db.dialect.is_infrastructure_error(error):
                raise
            return 1, 2, False

    def _done(self, projection: Projection, shadow: Target) -> dict[str, int]:
        """Where an unfinished shadow stands."""
        return {c: self._position(shadow, c) for c in projection.contexts}

    def _position(self, target: Target, context: str) -> int:
        try:
            return target.checkpoint(context).position
        except Exception as error:  # the shadow's tables do not exist yet
            if self.models.db.dialect.is_infrastructure_error(error):
                raise
            return 0

    # -- building ---------------------------------------------------------------------------

    def rebuild(self, name: str, *, at: datetime | None = None, changed: bool = False) -> Result:
        """Build `name` into a shadow version and swap it in once it equals live; with `changed`
        (the projection's code changed on purpose), swap it in though it differs, the first
        differences kept in the result. With `at`, an audit version (never swapped)."""
        plan = self.plan(name, at=at)
        projection = self.projection(name)
        result = Result(plan)
        started = time.monotonic()
        with self.models.lock(name, plan.version):
            shadow = self.models.target(projection, plan.version)
            shadow.prepare()
            self._carry_skips(plan, shadow)
            backfill_started = time.monotonic()
            result.backfill_events = self._backfill(projection, shadow, plan, at)
            result.backfill_seconds = time.monotonic() - backfill_started
            result.events += result.backfill_events
            engine = Engine(shadow, self.policy)
            if at is not None:
                self._finish_audit(plan, shadow, result)
            else:
                result.events += self._catch_up(engine, projection)
                self._carry_skips(plan, shadow)  # those made during the rebuild
                self._swap(plan, projection, shadow, result, changed=changed)
        result.seconds = time.monotonic() - started
        return result

    def _backfill(
        self, projection: Projection, shadow: Target, plan: Plan, at: datetime | None
    ) -> int:
        """Fold the log up to the planned heads into the shadow: in bulk (projections.bulk_rebuild)
        unless the shadow has moved past some of it already (resumed from its checkpoints)."""
        contexts = projection.contexts
        done = {context: shadow.checkpoint(context).position for context in contexts}
        for context in contexts:
            self.progress.start(context, max(0, plan.heads[context] - done[context]))
        if bulk_capable(shadow) and not any(done.values()):
            bulk = BulkBackfill(shadow, page_size=self.page_size, limit=self.keys_in_memory)
            return bulk.run(self.models.sources, plan.heads, at, self.progress)
        engine = Engine(shadow, self.policy)
        return sum(self._fold(engine, c, plan.heads[c], at) for c in contexts)

    def _carry_skips(self, plan: Plan, into: Target) -> None:
        """Skip in the shadow what a person skipped in the live version."""
        with self.models.db.transaction(write=False) as tx:
            skipped = dead_letters.skips(tx, plan.projection, plan.live_version)
        if skipped:
            with into.dead_letter_db.transaction() as tx:
                dead_letters.record_skips(tx, plan.version, skipped)

    def _fold(self, engine: Engine, context: str, until: int, at: datetime | None) -> int:
        """Apply the context's log after the shadow's checkpoint up to `until`, page by page;
        with `at`, only events of timestamp ≤ at. Returns the events read."""
        source = self.models.sources[context]
        after = engine.target.checkpoint(context).position
        read = 0
        while after < until:
            page = source.select_envelopes(context, after, self.page_size)
            page = [envelope for envelope in page if envelope.position <= until]
            if not page:
                break
            after = page[-1].position
            chosen = page if at is None else [e for e in page if e.timestamp <= at]
            if chosen:
                engine.handle(context, [Message(envelope) for envelope in chosen])
            read += len(page)
            self.progress.advance(len(page))
        return read

    def _catch_up(self, engine: Engine, projection: Projection) -> int:
        total = 0
        for _ in range(MAX_CATCH_UP_PASSES):
            found = sum(
                self._fold(engine, context, self.models.heads(context), None)
                for context in projection.contexts
            )
            total += found
            if found < CATCH_UP_THRESHOLD:
                break
        return total

    def _swap(
        self, plan: Plan, projection: Projection, shadow: Target, result: Result, *, changed: bool
    ) -> None:
        name = plan.projection
        live = self.models.target(projection, plan.live_version)
        with self.models.db.transaction() as tx:
            if active_version(tx, name, lock="update") != plan.live_version:
                raise RebuildError(f"{name}: the active version changed during the rebuild")
            floors = {c: partition_floors(live, c) for c in projection.contexts}
            self._skip_what_every_partition_applied(live, floors)
            engines = [Engine(live, self.policy), Engine(shadow, self.policy)]
            for context in projection.contexts:
                until = self.models.heads(context)
                for engine in engines:
                    result.events += self._fold(engine, context, until, None)
            comparison = compare(live, shadow)
            if not comparison.equal and not changed:
                raise VerifyFailed(name, comparison.differences)
            result.differences = comparison.differences
            positions = {
                c: Checkpoint(live.checkpoint(c).position, stream_seq_reached(floors[c]))
                for c in projection.contexts
            }
            for context, checkpoint in positions.items():
                if shadow.checkpoint(context).position != checkpoint.position:
                    raise VerifyFailed(name, [f"checkpoint {context}: not at {checkpoint}"])
            self._write_checkpoints(tx, shadow, positions)
            set_active(tx, name, plan.version)
            _mark(tx, name, plan.live_version, "previous")
            set_status(tx, name, plan.version, "active")
            result.checksum = comparison.checksum
            result.positions = {c: p.position for c, p in positions.items()}
            result.swapped = True

    def _skip_what_every_partition_applied(
        self, live: Target, floors: Mapping[str, Sequence[Checkpoint]]
    ) -> None:
        """Raise live's context checkpoints to where every partition has applied the log
        (projector workers move the partitions' checkpoints and leave the context's behind), so
        that the swap folds live from there rather than from where a single projector last
        stood. Done while the swap holds the pointer: no worker's batch of this projection runs
        meanwhile."""
        raised = {}
        for context, partitions in floors.items():
            applied = self.models.applied_through(context, partitions)
            current = live.checkpoint(context)
            if applied > current.position:  # an earlier stream sequence: a safe start
                raised[context] = Checkpoint(applied, current.stream_seq)
        if raised:
            with self.models.db.transaction() as tx:  # committed before live's batches lock it
                self._write_checkpoints(tx, live, raised)

    def _write_checkpoints(
        self, tx: Tx, target: Target, positions: Mapping[str, Checkpoint]
    ) -> None:
        """Set `target`'s context checkpoints (the shadow continues the live feed: same
        positions, stream sequences every partition had reached: rebuild_checkpoints)."""
        p = target.projection
        for context, checkpoint in positions.items():
            if isinstance(target, RedisDocumentTarget):
                layout = target.layout
                target.redis.mset(
                    {
                        layout.checkpoint_key(p.name, p.version, context): checkpoint.position,
                        layout.stream_seq_key(p.name, p.version, context): checkpoint.stream_seq,
                    }
                )
            else:
                write_checkpoint(tx, p.name, p.version, context, checkpoint)

    def _finish_audit(self, plan: Plan, shadow: Target, result: Result) -> None:
        with self.models.db.transaction() as tx:
            set_status(tx, plan.projection, plan.version, "audit")
        result.checksum = fingerprint(shadow)
        result.positions = {c: shadow.checkpoint(c).position for c in plan.heads}

    # -- retiring ---------------------------------------------------------------------------

    def retire(
        self, name: str, *, now: datetime | None = None, grace: timedelta = RETIRE_GRACE
    ) -> list[int]:
        """Drop the versions of `name` a swap left behind, once the swap is `grace` old; the
        versions dropped."""
        projection = self.projection(name)
        db = self.models.db
        with db.transaction(write=False) as tx:
            found = records(tx, name)
            swapped_at = active_versions(tx).get(name, (1, None))[1]
        if swapped_at is not None and (now or datetime.now(UTC)) - swapped_at < grace:
            raise RebuildError(
                f"{name} was swapped moments ago (less than {grace.total_seconds():g} s);"
                " retry in a few seconds"
            )
        retired = [r.version for r in found if r.status == "previous"]
        for version in retired:
            self._drop(projection, version)
            with db.transaction() as tx:
                forget(tx, name, version)
        return retired

    def _drop(self, projection: Projection, version: int) -> None:
        target = self.models.target(projection, version)
        if isinstance(target, RedisDocumentTarget):
            unlink_prefix(target.redis, target.layout.prefix(projection.name, version))
            return
        with self.models.db.transaction() as tx:
            if isinstance(target, SqlProjectionTarget) and isinstance(
                target.projection, SqlProjection
            ):
                for table in target.tables:
                    tx.execute(f"DROP TABLE IF EXISTS {table.name}")
            else:
                for generic in ("rm_hashes", "rm_sorted_sets"):
                    tx.execute(
                        f"DELETE FROM {generic} WHERE projection = ? AND version = ?",  # noqa: S608
                        [projection.name, version],
                    )

    # -- inspection -------------------------------------------------------------------------

    def versions(self) -> list[VersionRecord]:
        try:
            with self.models.db.transaction(write=False) as tx:
                return records(tx)
        except Exception as error:
            if self.models.db.dialect.is_infrastructure_error(error):
                raise
            return []


def _unfinished(found: list[VersionRecord], kind: str, at: datetime | None) -> VersionRecord | None:
    for record in found:
        if record.status == "building" and record.kind == kind and record.as_of == at:
            return record
    return None


def _mark(tx: Tx, projection: str, version: int, status: str) -> None:
    register(tx, projection, version, "rebuild")
    set_status(tx, projection, version, status)
