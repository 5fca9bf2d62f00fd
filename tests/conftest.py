"""Fixtures shared by every test layer: the two storage modes, a client of the write API (an
operator's), and the test identity every service trusts."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from contexts.settings import CONTEXTS, Settings
from tests.support.auth import IDENTITY, OPERATOR, JwksServer
from tests.support.postgres import (
    forget_pending_jobs,
    require_postgres,
    scratch_databases,
    url_settings,
)
from write_api.app import create_app

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
GENEROUS_RATE_LIMITS = {
    "STRATA_RATE_LIMIT_DEFAULT": "100000/minute",
    "STRATA_RATE_LIMIT_ROUTES": "{}",
    "STRATA_RATE_LIMIT_ROLES": "{}",
}


@pytest.fixture(scope="session", autouse=True)
def trusted_identity() -> Iterator[JwksServer]:
    """Every service of the session, in process or not, trusts the test identity's JWKS."""
    with JwksServer(IDENTITY.key).serving() as server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("STRATA_JWKS_URL", server.url)
        yield server


@pytest.fixture(scope="session", autouse=True)
def generous_rate_limits() -> Iterator[None]:
    """Every service of the session, in process or not, has rate limits on, with ceilings no
    test reaches by accident: the suite sends many requests as one operator or user, within
    one window. The tests of the limits themselves set their own, low ones."""
    with pytest.MonkeyPatch.context() as patch:
        for variable, value in GENEROUS_RATE_LIMITS.items():
            patch.setenv(variable, value)
        yield


@pytest.fixture(scope="session")
def postgres_stores() -> Iterator[dict[str, str]]:
    """One event-store database per registered context for the whole session."""
    url = require_postgres()
    with scratch_databases(url, *CONTEXTS) as urls:
        yield urls


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings of one storage mode: embedded SQLite files, or PostgreSQL database per service."""
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "var")
    urls = request.getfixturevalue("postgres_stores")
    return Settings(**url_settings(urls))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    # the session's shared stores hold the pending jobs of earlier tests' sagas
    forget_pending_jobs({context: url for context, url in settings.database_urls().items() if url})
    with TestClient(create_app(settings), headers=OPERATOR) as test_client:
        yield test_client
