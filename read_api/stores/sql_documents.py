"""The document-shaped read models in the embedded read database: the generic tables of
`readmodels.documents`, keyed like Redis without the prefix (`readmodels.keys`)."""

from collections.abc import Iterable
from uuid import UUID

from read_api.stores.base import Profile, Spender, Stats
from read_api.stores.missing_tables import checkpoint_positions
from read_api.stores.redis_models import profile_from_hash, stats_from_hash
from read_api.stores.version_cache import ActiveVersions
from readmodels import keys
from readmodels.catalog import TOP_SPENDERS, USER_PROFILES, USER_STATS, ReadModel
from readmodels.checkpoints import Positions, probe_checkpoints
from readmodels.documents import DocumentTables
from readmodels.sql import SqlDatabase


class SqlDocuments:
    """`KeyValueModels` over the embedded read database."""

    def __init__(self, database: SqlDatabase, versions: ActiveVersions | None = None) -> None:
        self._db = database
        self._versions = versions

    def _active(self, model: ReadModel) -> ReadModel:
        return model if self._versions is None else self._versions.resolve(model)

    def positions(self, models: Iterable[ReadModel]) -> Positions:
        chosen = [self._active(model) for model in models]
        return checkpoint_positions(self._db, chosen)

    def _hash(self, model: ReadModel, key: str) -> dict[str, str]:
        with self._db.transaction(write=False) as tx:
            return DocumentTables(tx, self._active(model)).hash(key)

    def profile(self, user_id: UUID) -> Profile | None:
        fields = self._hash(USER_PROFILES, keys.user_profile_key(user_id))
        return profile_from_hash(fields) if fields else None

    def stats(self, user_id: UUID) -> Stats | None:
        fields = self._hash(USER_STATS, keys.user_stats_key(user_id))
        return stats_from_hash(fields) if fields else None

    def top_spenders(self, currency: str, limit: int) -> list[Spender]:
        with self._db.transaction(write=False) as tx:
            top = DocumentTables(tx, self._active(TOP_SPENDERS))
            ranked = top.top(keys.top_spenders_key(currency), limit)
        return [Spender(UUID(member), score) for member, score in ranked]

    def ping(self) -> None:
        with self._db.transaction(write=False) as tx:
            probe_checkpoints(tx)

    def close(self) -> None:
        self._db.close()
