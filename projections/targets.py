"""Which target holds which read model, per mode. The projections are the registered contexts'
(`projections.models.all_projections`) unless a caller passes others (another registry's)."""

from collections.abc import Sequence

from redis import Redis

from projections.active import ActiveTarget
from projections.engine import Target
from projections.leases import Lease
from projections.model import OpsProjection, Projection, SqlProjection
from projections.models import all_projections
from projections.redis_target import RedisDocumentTarget
from projections.sql_target import SqlDocumentTarget, SqlProjectionTarget
from readmodels.keys import RedisLayout
from readmodels.sql import SqlDatabase


def _chosen(projections: Sequence[Projection] | None) -> Sequence[Projection]:
    return all_projections() if projections is None else projections


def stack_targets(
    read_db: SqlDatabase,
    redis: Redis,
    *,
    layout: RedisLayout | None = None,
    projections: Sequence[Projection] | None = None,
) -> list[Target]:
    """Document models in Redis, SQL models (and every dead letter) in the read database."""
    targets: list[Target] = []
    for projection in _chosen(projections):
        if isinstance(projection, OpsProjection):
            targets.append(RedisDocumentTarget(redis, projection, read_db, layout))
        elif isinstance(projection, SqlProjection):
            targets.append(SqlProjectionTarget(read_db, projection))
    return targets


def sql_targets(db: SqlDatabase, projections: Sequence[Projection] | None = None) -> list[Target]:
    """Every model in one SQL database (the embedded mode's SQLite file, or a scratch check)."""
    targets: list[Target] = []
    for projection in _chosen(projections):
        if isinstance(projection, OpsProjection):
            targets.append(SqlDocumentTarget(db, projection))
        elif isinstance(projection, SqlProjection):
            targets.append(SqlProjectionTarget(db, projection))
    return targets


def target_at(
    projection: Projection,
    version: int,
    read_db: SqlDatabase,
    redis: Redis | None = None,
    layout: RedisLayout | None = None,
    lease: Lease | None = None,
) -> Target:
    """`projection`'s target at `version`: document models in Redis when `redis` is given
    (the stack), else in the generic tables of `read_db`; SQL models in `read_db`. With a
    `lease`, it keeps that partition's checkpoints (a projector worker's)."""
    at = projection.at_version(version)
    if isinstance(at, OpsProjection):
        if redis is not None:
            return RedisDocumentTarget(redis, at, read_db, layout, lease)
        return SqlDocumentTarget(read_db, at, lease)
    if isinstance(at, SqlProjection):
        return SqlProjectionTarget(read_db, at, lease)
    raise TypeError(f"no target for {projection!r}")


def following_targets(
    read_db: SqlDatabase,
    redis: Redis | None = None,
    *,
    layout: RedisLayout | None = None,
    projections: Sequence[Projection] | None = None,
    lease: Lease | None = None,
) -> list[Target]:
    """The projectors' targets: each follows its projection's active version (with `lease`,
    in that one partition)."""

    def following(projection: Projection) -> Target:
        def at(version: int) -> Target:
            return target_at(projection, version, read_db, redis, layout, lease)

        return ActiveTarget(read_db, projection.name, at)

    return [following(projection) for projection in _chosen(projections)]


def find_projection(
    name: str, projections: Sequence[Projection] | None = None
) -> Projection | None:
    return next((p for p in _chosen(projections) if p.name == name), None)
