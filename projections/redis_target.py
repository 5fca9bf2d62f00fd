"""Document-shaped read models in Redis: one Lua call per batch.

The call compares each event's position with the checkpoint and, in the same atomic step,
applies the new events' operations in order and moves the checkpoint to the last one applied
(key `rm:{<proj>:v<k>}:ckpt:<context>`, its stream sequence beside it in `…:seq:<context>`).
It names the checkpoint it expects (a mismatch means another writer: nothing is written), and
it stops before an event that fails, with the checkpoint after the ones before it; an event is
written whole or not at all (a write Redis would refuse is found before the first). The `{…}`
hash tag keeps a projection's keys in one cluster slot, which the
script relies on: it reads and writes keys derived from the operations.

Dead letters live in the SQL read database: parked events are recorded there first
(idempotently) and then passed through the script with no operations, which moves the
checkpoint past them.

Redis can come back from a restart with less than it acknowledged: empty (no persistence) or
rolled back to an older snapshot, data and checkpoints alike. The target remembers the highest
checkpoint Redis showed it per context; a read behind it raises CheckpointLost, and the
projector re-projects from what Redis holds (`rewind`, then the consumer is recreated there).
"""

import logging
from collections.abc import Callable, Sequence
from uuid import UUID

from redis import Redis, ResponseError
from redis import exceptions as redis_errors

from projections import dead_letters
from projections.dead_letters import DeadLetter
from projections.document_ops import check, encode
from projections.leases import Lease
from projections.model import (
    Apply,
    CheckpointLost,
    Message,
    OpsProjection,
    Park,
    ProjectionFailed,
    Step,
)
from projections.redis_script import LUA
from readmodels.checkpoints import Checkpoint, checkpoint_payload
from readmodels.keys import RedisLayout
from readmodels.partition_checkpoints import LeaseLost, partition_slot
from readmodels.schema import SHARED_TABLES, create_tables
from readmodels.sql import SqlDatabase

logger = logging.getLogger("strata.projections")

INFRASTRUCTURE_REPLIES = (
    redis_errors.AuthenticationError,
    redis_errors.ClusterDownError,
    redis_errors.MasterDownError,
    redis_errors.NoPermissionError,
    redis_errors.NoScriptError,
    redis_errors.OutOfMemoryError,
    redis_errors.ReadOnlyError,
    redis_errors.TryAgainError,
)
"""Error replies about the server's state, not the event: retried like a lost connection."""
INFRASTRUCTURE_PREFIXES = ("MISCONF", "BUSY")
"""The same, for replies redis-py reports as a plain ResponseError."""
INFRASTRUCTURE_WORDS = (
    *INFRASTRUCTURE_PREFIXES,
    "OOM",
    "READONLY",
    "LOADING",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "NOPERM",
)
"""The same, as the first word of an error a command of the script reported to it."""


def is_infrastructure_reply(error: ResponseError) -> bool:
    return isinstance(error, INFRASTRUCTURE_REPLIES) or str(error).startswith(
        INFRASTRUCTURE_PREFIXES
    )


class CheckpointMoved(RuntimeError):
    """Another writer moved the checkpoint during the batch (two projectors on one model)."""


class RedisDocumentTarget:
    def __init__(
        self,
        redis: Redis,
        projection: OpsProjection,
        dead_letter_db: SqlDatabase,
        layout: RedisLayout | None = None,
        lease: Lease | None = None,
    ) -> None:
        """`lease`: a projector worker's lease on one partition (projections.workers): this
        target then keeps that partition's checkpoint, fenced by the lease's epoch."""
        self.redis = redis
        self.lease = lease
        self._projection = projection
        self._dead_letter_db = dead_letter_db
        self.layout = layout or RedisLayout()
        self._script = redis.register_script(LUA)
        pool = getattr(redis, "connection_pool", None)
        db = int(pool.connection_kwargs.get("db", 0) or 0) if pool is not None else 0
        self._channel = self.layout.channel(db)
        self._known: dict[str, Checkpoint] = {}
        """The checkpoint per context as this target last wrote it: the expected value of the
        next batch's compare-and-set (a mismatch means another writer: re-read and retry)."""
        self._acknowledged: dict[str, int] = {}
        """The highest checkpoint per context Redis has shown this target (read or written): one
        read behind it means Redis lost data (restarted empty or from an older snapshot)."""

    @property
    def projection(self) -> OpsProjection:
        return self._projection

    @property
    def dead_letter_db(self) -> SqlDatabase:
        return self._dead_letter_db

    def prepare(self) -> None:
        with self._dead_letter_db.transaction() as tx:
            create_tables(tx, SHARED_TABLES)

    def _keys(self, context: str) -> list[str]:
        """The script's KEYS (see LUA)."""
        p, layout = self._projection, self.layout
        whole = [
            layout.checkpoint_key(p.name, p.version, context),
            layout.stream_seq_key(p.name, p.version, context),
        ]
        if self.lease is None:
            return whole
        n = self.lease.partition
        return [
            layout.partition_checkpoint_key(p.name, p.version, context, n),
            layout.partition_stream_seq_key(p.name, p.version, context, n),
            layout.partition_epoch_key(p.name, p.version, context, n),
            whole[0],
            whole[1],
        ]

    def checkpoint(self, context: str) -> Checkpoint:
        keys = self._keys(context)
        position, stream_seq = self.redis.mget(keys[:2])
        found = Checkpoint(int(position or 0), int(stream_seq or 0))
        if self.lease is not None:  # the context's checkpoint covers every partition
            whole, whole_seq = self.redis.mget(keys[3:])
            if int(whole or 0) > found.position:
                found = Checkpoint(int(whole or 0), int(whole_seq or 0))
        acknowledged = self._acknowledged.get(context, 0)
        if found.position < acknowledged:
            self._known.pop(context, None)
            raise CheckpointLost(
                "Redis", self._projection.label, context, found.position, acknowledged
            )
        self._acknowledged[context] = found.position
        return found

    def rewind(self, context: str) -> Checkpoint:
        self._known.pop(context, None)
        self._acknowledged.pop(context, None)
        return self.checkpoint(context)

    def parked_heads(self, context: str) -> dict[UUID, int]:
        p = self._projection
        with self._dead_letter_db.transaction(write=False) as tx:
            return dead_letters.parked_heads(tx, p.name, p.version, context)

    def commit(self, context: str, steps: Sequence[Step]) -> None:
        known = self._known.pop(context, None)
        try:
            self._commit(context, steps, known or self.checkpoint(context))
        except CheckpointMoved:
            if known is None:
                raise
            # Another writer moved it since our last batch (re-read it and try once more), or
            # Redis lost it: the read raises CheckpointLost.
            found = self.checkpoint(context)
            self._report_moved(context, known, found, steps)
            self._commit(context, steps, found)

    def _report_moved(
        self, context: str, known: Checkpoint, found: Checkpoint, steps: Sequence[Step]
    ) -> None:
        """Say that this batch's events up to `found` are taken as another writer's: right for
        a projector that handed over (same stream), silent loss for a writer of another stream
        on these keys (two stacks sharing a Redis database)."""
        covered = [s.message.position for s in steps if known.position < s.message.position]
        covered = [position for position in covered if position <= found.position]
        logger.warning(
            "%s (%s): another writer moved the checkpoint from %d to %d during this batch;"
            " %d of its events (positions %s) are left to it, not applied here",
            self._projection.label,
            context,
            known.position,
            found.position,
            len(covered),
            f"{covered[0]}..{covered[-1]}" if covered else "none",
            extra={"projection": self._projection.label, "context": context},
        )

    def _commit(self, context: str, steps: Sequence[Step], checkpoint: Checkpoint) -> None:
        """One script call for the whole batch (see LUA)."""
        p = self._projection
        todo: list[Step] = []
        for step in steps:
            floor = todo[-1].message.position if todo else checkpoint.position
            if step.message.position > floor:
                todo.append(step)
        if not todo:
            self._known[context] = checkpoint
            return
        payloads = self._payloads(todo)
        parks = [step for step in todo if isinstance(step, Park)]
        if parks:
            with self._dead_letter_db.transaction() as tx:
                dead_letters.insert(tx, p.name, p.version, context, parks)
        slot = context if self.lease is None else partition_slot(context, self.lease.partition)
        head = checkpoint_payload(p.name, p.version, slot, Checkpoint(0)).removesuffix("0}")
        args: list[str | int] = [
            "cas",
            checkpoint.position,
            self.layout.prefix(p.name, p.version),
            self._channel,
            head,
            "" if self.lease is None else self.lease.epoch,
        ]
        for step, payload in zip(todo, payloads, strict=True):
            message = step.message
            partition = f"{message.envelope.partition:02d}"
            args += [message.position, message.stream_seq, partition, payload]
        result = self._script(keys=self._keys(context)[:4], args=args)
        applied, failure = self._check(todo, result)
        if not applied and failure is None:  # every event was at or below Redis's checkpoint,
            raise CheckpointMoved(  # which is not the one expected: the script compared nothing
                f"{p.label}: the checkpoint moved past the batch (at position"
                f" {todo[0].message.position})"
            )
        if applied:
            last = todo[applied - 1].message
            self._known[context] = Checkpoint(last.position, last.stream_seq)
            self._acknowledged[context] = max(self._acknowledged.get(context, 0), last.position)
        else:
            self._known[context] = checkpoint
        if failure is not None:
            raise failure(todo[applied].message.position)

    def reapply(self, letter: DeadLetter) -> None:
        p = self._projection
        message = Message(letter.envelope, letter.stream_seq or 0)
        [payload] = self._payloads([Apply(message)])
        result = self._script(
            keys=[self.layout.retried_key(p.name, p.version, letter.context, letter.position)],
            args=[
                "once",
                "",
                self.layout.prefix(p.name, p.version),
                "",
                "",
                letter.position,
                "",
                payload,
            ],
        )
        _, failure = self._check([Apply(message)], result)
        if failure is not None:
            raise failure(message.position)
        with self._dead_letter_db.transaction() as tx:
            dead_letters.mark(tx, letter.id, "retried")

    def _payloads(self, steps: Sequence[Step]) -> list[str]:
        """Each step's operations as the script reads them (none for a parked event)."""
        payloads: list[str] = []
        for step in steps:
            if isinstance(step, Park):
                payloads.append("[]")
                continue
            try:
                ops = list(self._projection.operations(step.message.envelope))
                check(ops)
            except Exception as error:
                raise ProjectionFailed(step.message.position, error) from error
            payloads.append(encode(ops))
        return payloads

    def _check(
        self, steps: Sequence[Step], result: object
    ) -> tuple[int, Callable[[int], Exception] | None]:
        """The number of new events the script applied, and if it stopped short, the error
        of the next one (given its position)."""
        if isinstance(result, ResponseError) and not is_infrastructure_reply(result):
            raise ProjectionFailed(steps[0].message.position, result)
        if isinstance(result, Exception):
            raise result
        if not isinstance(result, list | tuple) or len(result) != 3:
            raise TypeError(f"unexpected script result {result!r}")
        applied, code, raw = int(result[0]), int(result[1]), result[2]
        reason = raw.decode() if isinstance(raw, bytes) else str(raw)
        if code == -1:
            raise CheckpointMoved(
                f"{self._projection.label}: the checkpoint moved during the batch"
                f" (at position {steps[0].message.position})"
            )
        if code == -4:
            lease = self.lease
            raise LeaseLost(
                f"{self._projection.label}: a lease newer than epoch"
                f" {lease.epoch if lease else 0} has written this partition's checkpoint"
            )
        if code == -2:
            return applied, lambda position: ProjectionFailed(
                position, f"UnresolvedReference: {reason}"
            )
        if code == -3:
            error = ResponseError(reason)
            if reason.startswith(INFRASTRUCTURE_WORDS):
                return applied, lambda _: error
            return applied, lambda position: ProjectionFailed(position, error)
        return applied, None
