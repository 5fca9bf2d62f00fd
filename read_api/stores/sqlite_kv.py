"""The key-value shaped read models in the embedded read database: the generic tables
`rm_hashes(projection, version, key, field, value)` and
`rm_sorted_sets(projection, version, key, member, score)` that `projections` writes in place of
Redis, keyed like Redis without the `rm:{<proj>:v<k>}:` prefix (`user:<id>`, `top:<CUR>`)."""

from collections.abc import Iterable
from uuid import UUID

from read_api.catalog import TOP_SPENDERS, USER_PROFILES, USER_STATS, Positions, Projection
from read_api.stores.base import Profile, Spender, Stats
from read_api.stores.redis_models import profile_from_hash, stats_from_hash
from read_api.stores.sql import Database, Session, read_positions
from read_api.stores.versions import ActiveVersions


def _hash(session: Session, projection: Projection, key: str) -> dict[str, str]:
    rows = session.all(
        "SELECT field, value FROM rm_hashes WHERE projection = ? AND version = ? AND key = ?",
        [projection.name, projection.version, key],
    )
    return {str(field): str(value) for field, value in rows}


class SqliteKeyValue:
    """`KeyValueModels` over the embedded read database."""

    def __init__(self, database: Database, versions: ActiveVersions | None = None) -> None:
        self._db = database
        self._versions = versions

    def _active(self, projection: Projection) -> Projection:
        return projection if self._versions is None else self._versions.resolve(projection)

    def positions(self, projections: Iterable[Projection]) -> Positions:
        chosen = [self._active(p) for p in projections]
        with self._db.session() as session:
            return read_positions(session, chosen)

    def profile(self, user_id: UUID) -> Profile | None:
        with self._db.session() as session:
            fields = _hash(session, self._active(USER_PROFILES), f"user:{user_id}")
        return profile_from_hash(fields) if fields else None

    def stats(self, user_id: UUID) -> Stats | None:
        with self._db.session() as session:
            fields = _hash(session, self._active(USER_STATS), f"stats:{user_id}")
        return stats_from_hash(fields) if fields else None

    def top_spenders(self, currency: str, limit: int) -> list[Spender]:
        # Ties in the order of Redis ZREVRANGE: by member, descending.
        top = self._active(TOP_SPENDERS)
        with self._db.session() as session:
            rows = session.all(
                "SELECT member, score FROM rm_sorted_sets"
                " WHERE projection = ? AND version = ? AND key = ?"
                " ORDER BY score DESC, member DESC LIMIT ?",
                [top.name, top.version, f"top:{currency}", limit],
            )
        return [Spender(UUID(str(member)), int(score)) for member, score in rows]

    def ping(self) -> None:
        with self._db.session() as session:
            session.all("SELECT position FROM rm_checkpoints LIMIT 1")

    def close(self) -> None:
        self._db.close()
