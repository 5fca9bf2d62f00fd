"""A write service's commands succeed at once after PostgreSQL dropped every pooled connection,
and soon after a long outage ends (eventlog/pool_recovery.py).

A restart of PostgreSQL leaves every idle connection of the event store's pool dead. Here the
shared server stays up and drops the connections itself, as a restart does:
`pg_terminate_backend` for every connection to the scratch event-store databases. Before the
pool looked for dropped connections, each dead one failed the command that drew it with a 503.
The long outage needs a server of its own, stopped and started again.
"""

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from contexts.settings import CONTEXTS, Settings
from eventlog.pool_recovery import recover_promptly
from tests.support.api import register, unique_email
from tests.support.auth import OPERATOR
from tests.support.postgres import (
    drop_postgres_connections,
    require_postgres,
    scratch_databases,
    url_settings,
)
from tests.support.servers import PostgresServer, require_server_binaries
from write_api.app import create_app

pytestmark = pytest.mark.postgres

POOL_SIZE = 4
OUTAGE_SECONDS = 16.0
"""Long enough for the pool's doubling pauses (1, 2, 4, 8 s) to put its next try some 14 s
after the server is back."""
BACK_WITHIN_SECONDS = 5.0


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


def fill_the_pool(client: TestClient) -> None:
    """Commands at once, so that the pool holds several connections, all used."""
    with ThreadPoolExecutor(POOL_SIZE * 2) as pool:
        for user in pool.map(lambda _: register(client), range(POOL_SIZE * 4)):
            assert user


def test_commands_succeed_at_once_after_postgresql_dropped_every_pooled_connection(
    service: WriteService,
) -> None:
    fill_the_pool(service.client)
    assert drop_postgres_connections(service.users_database_url) >= 2

    for _ in range(POOL_SIZE * 2):
        register(service.client)  # asserts the 201
    assert service.client.get("/readyz").status_code == 200


def test_commands_succeed_again_and_again_after_repeated_drops(service: WriteService) -> None:
    for _ in range(3):
        fill_the_pool(service.client)
        drop_postgres_connections(service.users_database_url)
    for _ in range(POOL_SIZE):
        register(service.client)


def test_a_connection_that_was_only_sent_a_notification_is_kept() -> None:
    """The socket of an idle connection that listens is readable when a notification arrives:
    the check asks the server, and keeps the connection, which is in good order."""
    url = require_postgres()
    with ConnectionPool(url, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool:
        recover_promptly(pool)
        with pool.connection() as listener:
            listener.execute("LISTEN strata_test_dropped_connections")
            backend = listener.info.backend_pid
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("NOTIFY strata_test_dropped_connections")
        with pool.connection() as conn:
            assert conn.info.backend_pid == backend
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert pool.get_stats().get("connections_lost", 0) == 0


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    require_server_binaries()
    root = Path(tempfile.mkdtemp(prefix="strata-pg-"))
    os.chmod(root, 0o755)  # the postgres user must reach its folder
    (root / "postgres").mkdir()
    server = PostgresServer(root / "postgres")
    try:
        server.start()
        yield server
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)


def test_commands_succeed_soon_after_a_long_outage_ends(own_server: PostgresServer) -> None:
    urls = own_server.create_databases(*CONTEXTS)
    settings = Settings(**url_settings(urls), db_pool_size=POOL_SIZE, db_connect_timeout=1)
    with TestClient(create_app(settings), headers=OPERATOR) as client:
        fill_the_pool(client)
        own_server.crash()
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < outage_ends:  # the pool loses its connections, tries again
            response = client.post("/users", json={"name": "Ada", "email": unique_email()})
            assert response.status_code == 503, response.text
        own_server.start()
        back = time.monotonic()
        while (
            client.post("/users", json={"name": "Ada", "email": unique_email()}).status_code != 201
        ):
            assert time.monotonic() - back < BACK_WITHIN_SECONDS, "still 503 after the outage"
        for _ in range(POOL_SIZE):
            register(client)
