"""The read API as a service: health, readiness, metrics, OpenAPI, outages, and mounting."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from contexts.settings import Settings
from read_api.app import create_app
from read_api.problems import install_problem_handlers
from read_api.routes import include_read_routes
from readmodels.catalog import USER_PROFILES
from tests.support.api import assert_problem
from tests.support.auth import OPERATOR
from tests.support.read_models import Backend


def test_healthz_and_readyz_answer_when_the_stores_do(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "auth": "jwt"}


def test_metrics_count_and_time_requests_per_endpoint_template(
    client: TestClient, backend: Backend
) -> None:
    user = uuid.uuid4()
    backend.write.profile(user, "Ada", "ada@example.com")
    client.get(f"/users/{user}")
    client.get(f"/users/{user}")
    client.get(f"/users/{uuid.uuid4()}")
    client.get("/users", params={"limit": 0})
    client.get("/users", params={"position": "users:99", "wait": 0})

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    labels = 'endpoint="/users/{user_id}",method="GET"'
    assert f'strata_read_requests_total{{{labels},status="200"}} 2.0' in text
    assert f'strata_read_requests_total{{{labels},status="404"}} 1.0' in text
    assert 'strata_read_requests_total{endpoint="/users",method="GET",status="422"} 1.0' in text
    assert 'strata_read_requests_total{endpoint="/users",method="GET",status="503"} 1.0' in text
    assert f"strata_read_request_seconds_count{{{labels}}} 3.0" in text
    assert 'strata_read_waits_total{outcome="timeout"} 1.0' in text


def test_two_apps_in_one_process_keep_their_own_metrics(backend: Backend) -> None:
    with (
        TestClient(create_app(backend.settings), headers=OPERATOR) as first,
        TestClient(create_app(backend.settings), headers=OPERATOR) as second,
    ):
        first.get("/users")
        assert "strata_read_requests_total{" in first.get("/metrics").text
        assert "strata_read_requests_total{" not in second.get("/metrics").text


def test_openapi_documents_every_read_endpoint(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    assert client.get("/docs").status_code == 200
    assert set(schema["paths"]) >= {
        "/users",
        "/users/{user_id}",
        "/users/{user_id}/stats",
        "/leaderboards/{currency}/top-spenders",
        "/orders",
        "/orders/{order_id}",
        "/sales/daily",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    params = {p["name"] for p in schema["paths"]["/orders"]["get"]["parameters"]}
    assert params >= {"position", "wait", "cursor", "limit", "user_id", "status"}


def test_without_the_embedded_read_database_reads_are_503_and_not_ready(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "empty")
    with TestClient(create_app(settings), headers=OPERATOR) as client:
        read = client.get(f"/users/{uuid.uuid4()}")
        ready = client.get("/readyz")

    assert_problem(read, 503, "store is unavailable")
    assert read.headers["Retry-After"] == "1"
    assert_problem(ready, 503, "unreachable")
    assert not (tmp_path / "empty" / "read.sqlite").exists(), "the read side must not create it"


def test_unreachable_stack_stores_make_reads_503_and_not_ready() -> None:
    settings = Settings(
        read_database_url="postgresql://postgres@127.0.0.1:9/read",
        redis_url="redis://127.0.0.1:9/0",
        db_connect_timeout=1,
        request_timeout=2,
    )
    with TestClient(create_app(settings), headers=OPERATOR) as client:
        profile = client.get(f"/users/{uuid.uuid4()}")
        listing = client.get("/orders")
        ready = client.get("/readyz")

    assert_problem(profile, 503, "store is unavailable")
    assert_problem(listing, 503, "store is unavailable")
    body = assert_problem(ready, 503, "key-value", "relational")
    assert body["type"] == "/problems/not-ready"


def test_the_read_routes_mount_under_a_prefix_beside_other_routes(backend: Backend) -> None:
    """As beside the write API: its own GET /users/{id} stays, the read one is /read/...,
    and the read stores open and close with the host app's lifespan."""
    events = []

    @asynccontextmanager
    async def host_lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("host up")
        yield
        events.append("host down")

    host = FastAPI(lifespan=host_lifespan)
    install_problem_handlers(host)

    @host.get("/users/{user_id}")
    async def command_side(user_id: str) -> dict[str, str]:
        return {"from": "host"}

    include_read_routes(host, backend.settings, prefix="/read")
    user = uuid.uuid4()
    backend.write.profile(user, "Ada", "ada@example.com")
    backend.write.checkpoint(USER_PROFILES, "users", 4)

    with TestClient(host, headers=OPERATOR) as client:
        assert client.get(f"/users/{user}").json() == {"from": "host"}
        read = client.get(f"/read/users/{user}", params={"position": "users:4"})
        assert read.json()["name"] == "Ada"
        assert read.headers["X-Read-Position"] == "users:4"
        assert_problem(client.get("/read/users", params={"cursor": "x"}), 422, "query.cursor")
        assert_problem(
            client.get(f"/read/users/{user}", params={"position": "users:5", "wait": 0}), 503
        )
        assert client.get("/read/readyz").json() == {"status": "ready", "auth": "jwt"}
        assert 'endpoint="/users/{user_id}"' in client.get("/read/metrics").text
        assert "/read/orders/{order_id}" in client.get("/openapi.json").json()["paths"]
        assert host.state.read_side.stores is not None

    assert events == ["host up", "host down"]
