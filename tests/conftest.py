"""Fixtures shared by every test layer: the two storage modes and a client of the write API."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from contexts.settings import Settings
from tests.support.postgres import require_postgres, scratch_databases
from write_api.app import create_app

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_stores() -> Iterator[dict[str, str]]:
    """One users and one orders event-store database for the whole session."""
    url = require_postgres()
    with scratch_databases(url, "users", "orders") as urls:
        yield urls


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings of one storage mode: embedded SQLite files, or PostgreSQL database per service."""
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "var")
    urls = request.getfixturevalue("postgres_stores")
    return Settings(users_database_url=urls["users"], orders_database_url=urls["orders"])


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
