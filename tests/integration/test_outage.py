"""A PostgreSQL outage gets a prompt 503 problem, not a hung request."""

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from contexts.settings import Settings
from tests.support.api import assert_problem, register, unique_email
from tests.support.auth import OPERATOR
from tests.support.postgres import url_settings
from tests.support.proxy import CuttableProxy, proxy_to_postgres, through
from write_api.app import create_app

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxied_client(postgres_stores: dict[str, str]) -> Iterator[tuple[TestClient, CuttableProxy]]:
    proxy = proxy_to_postgres(postgres_stores["users"])
    settings = Settings(
        **url_settings({c: through(proxy, url) for c, url in postgres_stores.items()}),
        request_timeout=3,
        db_connect_timeout=1,
    )
    with TestClient(create_app(settings), headers=OPERATOR) as client:
        yield client, proxy
    proxy.close()


def test_commands_and_readiness_answer_503_promptly_while_the_database_is_down(
    proxied_client: tuple[TestClient, CuttableProxy],
) -> None:
    client, proxy = proxied_client
    user = register(client)
    assert client.get("/readyz").status_code == 200

    proxy.cut()
    requests: tuple[Callable[[], httpx.Response], ...] = (
        lambda: client.post("/users", json={"name": "Down", "email": unique_email()}),
        lambda: client.put(f"/users/{user}/name", json={"name": "Down"}),
        lambda: client.get("/readyz"),
    )
    for request in requests:
        started = time.monotonic()
        response = request()
        elapsed = time.monotonic() - started
        body = assert_problem(response, 503)
        assert elapsed < 4.5, f"took {elapsed:.1f} s: {body}"
        if "readyz" not in body["instance"]:
            assert response.headers["Retry-After"] == "1"
    assert client.get("/healthz").status_code == 200
