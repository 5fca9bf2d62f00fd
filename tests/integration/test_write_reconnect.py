"""A write service's commands succeed at once after PostgreSQL dropped every pooled connection.

A restart of PostgreSQL leaves every idle connection of the event store's pool dead. Here the
server stays up (it is shared) and drops the connections itself, as a restart does:
`pg_terminate_backend` for every connection to the scratch event-store databases. Before the
pool looked for dropped connections, each dead one failed the command that drew it with a 503.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from contexts.settings import CONTEXTS, Settings
from eventlog.dropped_connections import watch_for_dropped_connections
from tests.support.api import register
from tests.support.auth import OPERATOR
from tests.support.postgres import require_postgres, scratch_databases, url_settings
from write_api.app import create_app

pytestmark = pytest.mark.postgres

POOL_SIZE = 4
TERMINATE_OTHERS = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


@dataclass(frozen=True)
class WriteService:
    client: TestClient
    users_database_url: str


@pytest.fixture
def service() -> Iterator[WriteService]:
    with scratch_databases(require_postgres(), *CONTEXTS) as urls:
        settings = Settings(**url_settings(urls), db_pool_size=POOL_SIZE, request_timeout=10)
        with TestClient(create_app(settings), headers=OPERATOR) as client:
            yield WriteService(client, urls["users"])


def drop_connections(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as admin:
        row = admin.execute(TERMINATE_OTHERS).fetchone()
    assert row is not None
    return int(row[0])


def fill_the_pool(client: TestClient) -> None:
    """Commands at once, so that the pool holds several connections, all used."""
    with ThreadPoolExecutor(POOL_SIZE * 2) as pool:
        for user in pool.map(lambda _: register(client), range(POOL_SIZE * 4)):
            assert user


def test_commands_succeed_at_once_after_postgresql_dropped_every_pooled_connection(
    service: WriteService,
) -> None:
    fill_the_pool(service.client)
    assert drop_connections(service.users_database_url) >= 2

    for _ in range(POOL_SIZE * 2):
        register(service.client)  # asserts the 201
    assert service.client.get("/readyz").status_code == 200


def test_commands_succeed_again_and_again_after_repeated_drops(service: WriteService) -> None:
    for _ in range(3):
        fill_the_pool(service.client)
        drop_connections(service.users_database_url)
    for _ in range(POOL_SIZE):
        register(service.client)


def test_a_connection_that_was_only_sent_a_notification_is_kept() -> None:
    """The socket of an idle connection that listens is readable when a notification arrives:
    the check asks the server, and keeps the connection, which is in good order."""
    url = require_postgres()
    with ConnectionPool(url, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool:
        watch_for_dropped_connections(pool)
        with pool.connection() as listener:
            listener.execute("LISTEN strata_test_dropped_connections")
            backend = listener.info.backend_pid
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("NOTIFY strata_test_dropped_connections")
        with pool.connection() as conn:
            assert conn.info.backend_pid == backend
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert pool.get_stats().get("connections_lost", 0) == 0
