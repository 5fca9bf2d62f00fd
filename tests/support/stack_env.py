"""The environment of a stack's processes on scratch resources, for tests that start them."""

from collections.abc import Iterator
from contextlib import contextmanager

from contexts.settings import CONTEXTS
from eventlog.jetstream import ContextStream
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
