"""The identity service in-process (SQLite, or PostgreSQL), beside a real users write service
served over HTTP from a thread: sign-up goes through the users service as in the stack."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from contexts.settings import Settings
from identity.app import create_app
from identity.main import dev_operator_token
from identity.service import Identity
from identity.settings import IdentitySettings
from runtime.auth.jwks import ec_keys
from tests.support.threaded_server import served
from write_api.app import create_app as create_write_app

SAGA_SECRET = "saga-secret-0123456789"
BOOTSTRAP = (
    '[{"client_id": "fulfilment", "role": "service",'
    ' "scope": "payments:write shipping:write orders:write", "secret": "' + SAGA_SECRET + '"}]'
)


class CurrentIdentityKeys:
    """The public keys of the identity service under test (a new one per test), as the users
    service finds them: it checks identity's own service token."""

    identity: Identity | None = None

    async def key(self, kid: str) -> ECKey | None:
        if self.identity is None:
            return None
        return ec_keys(self.identity.issuer.jwks()).get(kid)


@pytest.fixture(scope="module")
def identity_keys() -> CurrentIdentityKeys:
    return CurrentIdentityKeys()


@pytest.fixture(scope="module")
def users_url(
    tmp_path_factory: pytest.TempPathFactory, identity_keys: CurrentIdentityKeys
) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("users"))
    with served(create_write_app(settings, keys=identity_keys)) as url:
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
def identity_client(
    identity_settings: IdentitySettings, identity_keys: CurrentIdentityKeys
) -> Iterator[TestClient]:
    with TestClient(create_app(identity_settings)) as client:
        identity_keys.identity = identity_of(client)
        yield client
        identity_keys.identity = None


def identity_of(client: TestClient) -> Identity:
    identity: Identity = client.app.state.identity  # type: ignore[attr-defined]
    return identity


@pytest.fixture
def operator_token(identity_client: TestClient) -> str:
    return dev_operator_token(identity_of(identity_client))
