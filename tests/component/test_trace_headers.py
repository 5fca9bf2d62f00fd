"""A malformed trace header (`X-Correlation-Id`, `X-Causation-Id`) is a 400 on every request of
every service, queries too; a request without one, or with a well-formed one, is untouched.
The read API and identity are checked in their own folders; here the write API, and a bare app
with the shared problem handlers, which every service installs."""

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtime.http.problems import install_problem_handlers
from tests.support.api import assert_problem, register

MALFORMED = [
    ("X-Correlation-Id", "x" * 150),
    ("X-Correlation-Id", "caf\u00e9"),
    ("X-Correlation-Id", "two words"),
    ("X-Causation-Id", "y" * 101),
]


@pytest.mark.parametrize(("name", "value"), MALFORMED)
def test_a_malformed_trace_header_on_a_query_of_the_write_api_is_400(
    client: TestClient, name: str, value: str
) -> None:
    user = register(client)
    for path in (f"/users/{user}", "/healthz"):
        response = client.get(path, headers={name: value.encode()})
        body = assert_problem(response, 400, name, "1 to 100 visible ASCII")
        assert body["type"] == "/problems/http-error"


def test_a_trace_header_sent_twice_is_400(client: TestClient) -> None:
    lines = [("X-Correlation-Id", "a"), ("X-Correlation-Id", "b")]
    assert_problem(client.get("/healthz", headers=lines), 400, "send one X-Correlation-Id")


def test_queries_with_well_formed_trace_headers_or_none_are_answered(client: TestClient) -> None:
    user = register(client)
    assert client.get(f"/users/{user}").status_code == 200
    headers = {"X-Correlation-Id": "c" * 100, "X-Causation-Id": "req-1"}
    assert client.get(f"/users/{user}", headers=headers).status_code == 200


@pytest.fixture
def bare() -> TestClient:
    app = FastAPI()
    install_problem_handlers(app, logging.getLogger("test"))
    log = logging.getLogger("strata.test")

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        log.info("pinged")
        return {"ping": "pong"}

    return TestClient(app)


@pytest.mark.parametrize(("name", "value"), MALFORMED)
def test_every_service_with_the_shared_problem_handlers_refuses_it(
    bare: TestClient, name: str, value: str
) -> None:
    assert_problem(bare.get("/ping", headers={name: value.encode()}), 400, name)
    assert bare.get("/ping").status_code == 200
