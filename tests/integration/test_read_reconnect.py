"""The read API's first reads after its stores dropped every connection succeed (no 503).

A restart of PostgreSQL or Redis leaves every pooled connection dead. Here the servers stay up
(they are shared) and drop the connections themselves, which is what a restart does to them:
`pg_terminate_backend` for every connection to the scratch read database, `CLIENT KILL ID` for
every client of the scratch Redis database. The very next reads must be answered.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from fastapi.testclient import TestClient

from contexts.settings import Settings
from read_api.app import create_app
from readmodels.catalog import USER_PROFILES, USERS_DIRECTORY
from readmodels.sql import PostgresDatabase
from tests.support.auth import OPERATOR
from tests.support.postgres import drop_postgres_connections, require_postgres, scratch_databases
from tests.support.read_models import ReadModelWriter, require_redis, scratch_redis_database

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class Stack:
    client: TestClient
    database_url: str
    redis_url: str
    user: uuid.UUID


@pytest.fixture
def stack() -> Iterator[Stack]:
    with (
        scratch_databases(require_postgres(), "read") as urls,
        scratch_redis_database(require_redis()) as redis_url,
    ):
        writer = ReadModelWriter(
            PostgresDatabase(urls["read"]), redis.Redis.from_url(redis_url, decode_responses=True)
        )
        user = uuid.uuid4()
        writer.profile(user, "Ada Lovelace", "ada@example.com")
        writer.directory_entry(user, "Ada Lovelace")
        writer.checkpoint(USER_PROFILES, "users", 3)
        writer.checkpoint(USERS_DIRECTORY, "users", 3)
        writer.close()
        settings = Settings(read_database_url=urls["read"], redis_url=redis_url, db_pool_size=4)
        with TestClient(create_app(settings), headers=OPERATOR) as client:
            yield Stack(client, urls["read"], redis_url, user)


def drop_redis_connections(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url) as admin:
        db = admin.connection_pool.connection_kwargs.get("db", 0)
        own = admin.client_id()
        victims = [c["id"] for c in admin.client_list() if c["db"] == str(db) and c["id"] != own]
        for client_id in victims:
            admin.client_kill_filter(_id=client_id)
    return len(victims)


def read_everything(stack: Stack) -> None:
    """A directory read (PostgreSQL) and a profile read (Redis, with the version pointer)."""
    for path in ("/users", f"/users/{stack.user}"):
        response = stack.client.get(path)
        assert response.status_code == 200, response.text
    assert stack.client.get("/users").json()["items"][0]["id"] == str(stack.user)


def test_reads_succeed_at_once_after_postgresql_dropped_every_pooled_connection(
    stack: Stack,
) -> None:
    read_everything(stack)

    assert drop_postgres_connections(stack.database_url) >= 2  # the pool's and the listener's

    read_everything(stack)
    assert stack.client.get("/readyz").status_code == 200


def test_reads_succeed_at_once_after_redis_dropped_every_connection(stack: Stack) -> None:
    read_everything(stack)

    assert drop_redis_connections(stack.redis_url) >= 2  # the client's and the listener's

    read_everything(stack)
    assert stack.client.get("/readyz").status_code == 200


def test_reads_succeed_again_and_again_after_repeated_drops(stack: Stack) -> None:
    for _ in range(3):
        read_everything(stack)
        drop_postgres_connections(stack.database_url)
        drop_redis_connections(stack.redis_url)
    read_everything(stack)
