"""Which target holds which read model, per mode."""

from collections.abc import Sequence

from redis import Redis

from projections.engine import Target
from projections.model import OpsProjection, Projection, SqlProjection
from projections.models import all_projections
from projections.redis_target import RedisDocumentTarget, RedisLayout
from projections.sql import SqlDatabase
from projections.sql_target import SqlDocumentTarget, SqlProjectionTarget

READ_DATABASE = "read.sqlite"
"""The embedded mode's read database, in the data folder."""


def stack_targets(
    read_db: SqlDatabase,
    redis: Redis,
    *,
    layout: RedisLayout | None = None,
    projections: Sequence[Projection] | None = None,
) -> list[Target]:
    """Document models in Redis, SQL models (and every dead letter) in the read database."""
    targets: list[Target] = []
    for projection in projections or all_projections():
        if isinstance(projection, OpsProjection):
            targets.append(RedisDocumentTarget(redis, projection, read_db, layout))
        elif isinstance(projection, SqlProjection):
            targets.append(SqlProjectionTarget(read_db, projection))
    return targets


def sql_targets(db: SqlDatabase, projections: Sequence[Projection] | None = None) -> list[Target]:
    """Every model in one SQL database (the embedded mode's SQLite file, or a scratch check)."""
    targets: list[Target] = []
    for projection in projections or all_projections():
        if isinstance(projection, OpsProjection):
            targets.append(SqlDocumentTarget(db, projection))
        elif isinstance(projection, SqlProjection):
            targets.append(SqlProjectionTarget(db, projection))
    return targets
