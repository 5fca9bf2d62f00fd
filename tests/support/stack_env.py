"""The environment of a stack's processes on scratch resources, for tests that start them."""

from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis

from contexts.settings import CONTEXTS
from eventlog.jetstream import ContextStream
from projections.engine import Target
from projections.targets import following_targets
from readmodels.sql import PostgresDatabase
from tests.support.nats import delete_streams, new_namespace, require_nats
from tests.support.postgres import require_postgres, scratch_databases, url_variables
from tests.support.read_models import require_redis, scratch_redis_database


@contextmanager
def scratch_stack_environment(**variables: str) -> Iterator[dict[str, str]]:
    """`STRATA_*` variables naming scratch event stores and read database, a scratch Redis
    database and a new stream namespace (whose streams are deleted after), plus `variables`."""
    nats_url, redis_server = require_nats(), require_redis()
    namespace = new_namespace()
    with (
        scratch_databases(require_postgres(), *CONTEXTS, "read") as urls,
        scratch_redis_database(redis_server) as redis_url,
    ):
        yield {
            **url_variables(urls),
            "STRATA_REDIS_URL": redis_url,
            "STRATA_NATS_URL": nats_url,
            "STRATA_STREAM_NAMESPACE": namespace,
            **variables,
        }
        delete_streams(nats_url, *(ContextStream(c, namespace).name for c in CONTEXTS))


@contextmanager
def stack_read_targets(stack: dict[str, str]) -> Iterator[list[Target]]:
    """The read models the processes of `stack` project into, open for the block: their active
    versions, as the read API serves them."""
    read_db = PostgresDatabase(stack["STRATA_READ_DATABASE_URL"])
    redis = Redis.from_url(stack["STRATA_REDIS_URL"], decode_responses=True)
    try:
        targets = following_targets(read_db, redis)
        for target in targets:
            target.prepare()
        yield targets
    finally:
        read_db.close()
        redis.close()
