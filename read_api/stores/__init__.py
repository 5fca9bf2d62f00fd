"""The read stores: the key-value shaped models and the relational ones, per storage mode.

Stack mode: Redis (`STRATA_REDIS_URL`) and the PostgreSQL read database
(`STRATA_READ_DATABASE_URL`), or a streaming replica of it (`STRATA_READ_REPLICA_URL`), which then
serves the relational models, their checkpoints and the active versions. Embedded mode: both
families in `<data_dir>/read.sqlite`.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from read_api.stores.base import KeyValueModels, RelationalModels
from read_api.stores.redis_models import RedisKeyValue
from read_api.stores.relational import RelationalTables
from read_api.stores.replica import ReplicaProbe
from read_api.stores.sql_documents import SqlDocuments
from read_api.stores.version_cache import ActiveVersions
from readmodels.catalog import ReadModel
from readmodels.checkpoints import Positions
from readmodels.sql import READ_DATABASE, PostgresDatabase, SQLiteDatabase
from runtime.settings import CommonSettings, Mode


class ReadStoresMisconfigured(ValueError):
    """The settings name only one of the two stack-mode read stores, or a replica without them."""


@dataclass(frozen=True)
class ReadStores:
    key_value: KeyValueModels
    relational: RelationalModels
    description: str
    replica: ReplicaProbe | None = None
    """The relational models are read on a streaming replica: how far behind it is."""

    def positions(self, projections: Iterable[ReadModel]) -> Positions:
        chosen = list(projections)
        key_value = [p for p in chosen if p.shape == "documents"]
        relational = [p for p in chosen if p.shape == "tables"]
        positions = dict(self.key_value.positions(key_value)) if key_value else {}
        if relational:
            positions.update(self.relational.positions(relational))
        return positions

    def close(self) -> None:
        self.key_value.close()
        self.relational.close()


def read_stores_mode(settings: CommonSettings) -> Mode:
    urls = (settings.read_database_url, settings.redis_url)
    if all(urls):
        return "stack"
    if any(urls):
        raise ReadStoresMisconfigured(
            "the read models need both STRATA_READ_DATABASE_URL and STRATA_REDIS_URL, or neither"
        )
    if settings.read_replica_url:
        raise ReadStoresMisconfigured(
            "STRATA_READ_REPLICA_URL needs STRATA_READ_DATABASE_URL and STRATA_REDIS_URL"
        )
    return "embedded"


def stack_description(settings: CommonSettings) -> str:
    return "Redis and a PostgreSQL replica" if settings.read_replica_url else "Redis and PostgreSQL"


def build_read_stores(settings: CommonSettings, models: Sequence[ReadModel]) -> ReadStores:
    """Open the read stores the settings select, for `models` (the registry's read models).
    Connections are made lazily or in the background, so a store that is down makes requests
    fail with 503, not the start."""
    tables = [model for model in models if model.shape == "tables"]
    if read_stores_mode(settings) == "stack":
        assert settings.read_database_url
        assert settings.redis_url
        database = PostgresDatabase(
            settings.read_replica_url or settings.read_database_url,
            pool_size=settings.worker_threads,
            min_size=settings.db_pool_size,
            timeout=settings.db_connect_timeout,
            read_only=True,
        )
        versions = ActiveVersions(database)
        return ReadStores(
            key_value=RedisKeyValue(
                settings.redis_url, timeout=settings.request_timeout, versions=versions
            ),
            relational=RelationalTables(database, tables, versions),
            description=stack_description(settings),
            replica=ReplicaProbe(database) if settings.read_replica_url else None,
        )
    path = settings.data_dir / READ_DATABASE
    sqlite = SQLiteDatabase(path, busy_timeout=settings.db_lock_timeout, read_only=True)
    versions = ActiveVersions(sqlite)
    return ReadStores(
        key_value=SqlDocuments(sqlite, versions),
        relational=RelationalTables(sqlite, tables, versions),
        description=str(path.resolve()),
    )
