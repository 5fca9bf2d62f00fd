"""Fixtures of the read API tests: the read models written by hand on either storage mode.

`backend` is the embedded read database (SQLite) or the stack stores (the PostgreSQL read
database and Redis, each a scratch database for the session, emptied before every test).
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from contexts.settings import Settings
from read_api.app import create_app
from readmodels.sql import PostgresDatabase, SQLiteDatabase
from tests.support.auth import OPERATOR
from tests.support.postgres import require_postgres, scratch_databases
from tests.support.read_models import (
    Backend,
    ReadModelWriter,
    require_redis,
    scratch_redis_database,
)

READ_BACKENDS = ["embedded", pytest.param("stack", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def read_database_url() -> Iterator[str]:
    with scratch_databases(require_postgres(), "read") as urls:
        yield urls["read"]


@pytest.fixture(scope="session")
def read_redis_url() -> Iterator[str]:
    with scratch_redis_database(require_redis()) as url:
        yield url


@pytest.fixture(params=READ_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "embedded":
        data_dir = tmp_path / "var"
        writer = ReadModelWriter(SQLiteDatabase(data_dir / "read.sqlite"))
        settings = Settings(data_dir=data_dir)
    else:
        database_url = request.getfixturevalue("read_database_url")
        redis_url = request.getfixturevalue("read_redis_url")
        writer = ReadModelWriter(
            PostgresDatabase(database_url), redis.Redis.from_url(redis_url, decode_responses=True)
        )
        writer.clear()
        settings = Settings(read_database_url=database_url, redis_url=redis_url)
    try:
        yield Backend(request.param, settings, writer)
    finally:
        writer.close()


@pytest.fixture
def client(backend: Backend) -> Iterator[TestClient]:
    with TestClient(create_app(backend.settings), headers=OPERATOR) as test_client:
        yield test_client
