"""The identity service in-process (SQLite, or PostgreSQL), beside a real users write service
served over HTTP from a thread: sign-up goes through the users service as in the stack."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from contexts.settings import Settings
from identity.app import create_app
from identity.main import dev_operator_token
from identity.service import Identity
from identity.settings import IdentitySettings
from tests.support.threaded_server import served
from write_api.app import create_app as create_write_app

SAGA_SECRET = "saga-secret-0123456789"
BOOTSTRAP = (
    '[{"client_id": "fulfilment", "role": "service",'
    ' "scope": "payments:write shipping:write orders:write", "secret": "' + SAGA_SECRET + '"}]'
)


@pytest.fixture(scope="module")
def users_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("users"))
    with served(create_write_app(settings)) as url:
        yield url


@pytest.fixture
def identity_settings(tmp_path: Path, users_url: str) -> IdentitySettings:
    return IdentitySettings(
        data_dir=tmp_path,
        write_urls=f"users={users_url}",
        identity_bootstrap_clients=BOOTSTRAP,
        identity_password_profile="CHEAPEST",
    )


@pytest.fixture
def identity_client(identity_settings: IdentitySettings) -> Iterator[TestClient]:
    with TestClient(create_app(identity_settings)) as client:
        yield client


def identity_of(client: TestClient) -> Identity:
    identity: Identity = client.app.state.identity  # type: ignore[attr-defined]
    return identity


@pytest.fixture
def operator_token(identity_client: TestClient) -> str:
    return dev_operator_token(identity_of(identity_client))
