"""The stores a rebuild works on: the read database (and Redis), the event stores' logs, and
the per-version lock that keeps two rebuilds of one version apart."""

import fcntl
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from redis import Redis

from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings
from eventlog.envelope import EnvelopeSource, envelope_source
from eventlog.stores import build_services
from projections.engine import Target
from projections.model import Projection
from projections.models import all_projections
from projections.rebuild_reports import Busy
from projections.redis_target import RedisDocumentTarget
from projections.sql_target import SqlDocumentTarget, SqlProjectionTarget
from projections.targets import target_at
from readmodels.checkpoints import Checkpoint
from readmodels.keys import RedisLayout
from readmodels.sql import READ_DATABASE, PostgresDatabase, SqlDatabase, SQLiteDatabase

SCAN_PAGE = 1_000
SCAN_LIMIT = 50_000
"""How many events past the lowest partition's floor `applied_through` reads at most."""


@dataclass
class ReadModels:
    """The read stores and event stores a rebuild works on, and how to lock a version."""

    db: SqlDatabase
    sources: Mapping[str, EnvelopeSource]
    heads: Callable[[str], int]
    redis: Redis | None = None
    layout: RedisLayout | None = None
    lock_dir: Path | None = None
    lock_url: str | None = None
    projections: Sequence[Projection] = field(default_factory=all_projections)
    """The projections it knows (the registered contexts', unless another registry's)."""

    def target(self, projection: Projection, version: int) -> Target:
        return target_at(projection, version, self.db, self.redis, self.layout)

    def describe(self, target: Target) -> str:
        p = target.projection
        if isinstance(target, RedisDocumentTarget):
            return f"redis {target.layout.prefix(p.name, p.version)}*"
        if isinstance(target, SqlProjectionTarget):
            return "tables " + ", ".join(table.name for table in target.tables)
        if isinstance(target, SqlDocumentTarget):
            return f"rm_hashes/rm_sorted_sets version {p.version}"
        return p.label

    def applied_through(self, context: str, floors: Sequence[Checkpoint]) -> int:
        """The position before the first event of the context a version has not applied, given
        its `partition_floors` (projections.rebuild_checkpoints). With one checkpoint for the
        whole context (the single projector) that is the checkpoint; with partition workers,
        the log is read on from the lowest partition's floor to the first event above its
        partition's (at most SCAN_LIMIT events: past them, the last one read). An idle
        partition's floor stays low, so its checkpoint alone would not say."""
        positions = [floor.position for floor in floors]
        low = min(positions)
        if low == max(positions):
            return low
        source, at, read = self.sources[context], low, 0
        while read < SCAN_LIMIT:
            page = source.select_envelopes(context, at, SCAN_PAGE)
            for envelope in page:
                if envelope.position > positions[envelope.partition]:
                    return envelope.position - 1
            if len(page) < SCAN_PAGE:
                return max(positions)
            at, read = page[-1].position, read + len(page)
        return at

    @contextmanager
    def lock(self, projection: str, version: int) -> Iterator[None]:
        key = f"strata rebuild:{projection}:v{version}"
        if self.lock_url is not None:
            with psycopg.connect(self.lock_url, autocommit=True) as conn:
                row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [key]).fetchone()
                if not row or not row[0]:
                    raise Busy(f"{projection}:v{version} is being rebuilt by another process")
                yield
            return
        assert self.lock_dir is not None
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_dir / f"rebuild-{projection}-v{version}.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise Busy(
                    f"{projection}:v{version} is being rebuilt by another process"
                ) from error
            yield


@contextmanager
def open_read_models(settings: Settings, contexts: Registry = REGISTRY) -> Iterator[ReadModels]:
    """The read models of `contexts` and their event stores, as the settings select them
    (stack: PostgreSQL read database and Redis; embedded: `<data_dir>/read.sqlite`)."""
    projections = contexts.projections()
    with ExitStack() as stack:
        services = build_services(settings.model_copy(update={"group_commit": False}), contexts)
        stack.callback(services.close)
        recorders = {service.name: service.recorder for service in services.all()}
        sources = {name: envelope_source(recorder) for name, recorder in recorders.items()}

        def heads(context: str) -> int:
            return int(recorders[context].max_notification_id() or 0)

        if settings.read_database_url and settings.redis_url:
            db: SqlDatabase = PostgresDatabase(settings.read_database_url, pool_size=4)
            stack.callback(db.close)
            redis = Redis.from_url(settings.redis_url)
            stack.callback(redis.close)
            yield ReadModels(
                db,
                sources,
                heads,
                redis,
                lock_url=settings.read_database_url,
                projections=projections,
            )
            return
        db = SQLiteDatabase(
            settings.data_dir / READ_DATABASE, busy_timeout=settings.db_lock_timeout
        )
        stack.callback(db.close)
        yield ReadModels(db, sources, heads, lock_dir=settings.data_dir, projections=projections)
