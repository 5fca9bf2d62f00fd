"""Schemathesis against the BFFs' OpenAPI documents: generated requests, valid and invalid, each
answered with no server error and as documented (status, body, content type). Behind the BFFs
is a real read API process over a small read database; every request carries a user's token
(`Authorization` is not in the document's parameters, so it is not generated)."""

import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from bff.mobile.app import create_app as create_mobile_app
from bff.web.app import create_app as create_web_app
from tests.support.bff import ReadApiProcess, bearer, bff_settings, read_database
from tests.support.openapi import OpenApiCase
from tests.support.processes import free_port

ADA = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
BOUNDED = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
QUICK = {"read_wait_default_seconds": 0, "read_wait_max_seconds": 0.1}
"""A generated `wait` above 0.1 s is a 422: no request waits long for a position."""
UNUSED = bff_settings("http://127.0.0.1:1")
web_schema = schemathesis.openapi.from_dict(create_web_app(UNUSED).openapi())
mobile_schema = schemathesis.openapi.from_dict(create_mobile_app(UNUSED).openapi())


@pytest.fixture(scope="module")
def read_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with read_database(tmp_path_factory.mktemp("bff-schemathesis")) as (data_dir, write):
        write.profile(ADA, "Ada", "ada@example.com")
        write.checkpoint_all(1)
        quick = {"STRATA_READ_WAIT_DEFAULT_SECONDS": "0", "STRATA_READ_WAIT_MAX_SECONDS": "0.1"}
        process = ReadApiProcess(data_dir, free_port(), quick)
        with process.running():
            yield process.url


@pytest.fixture(scope="module")
def web_app(read_api: str) -> Iterator[FastAPI]:
    try:
        yield create_web_app(bff_settings(read_api, **QUICK))
    finally:
        shutdown_lifespans()


@pytest.fixture(scope="module")
def mobile_app(read_api: str) -> Iterator[FastAPI]:
    try:
        yield create_mobile_app(bff_settings(read_api, **QUICK))
    finally:
        shutdown_lifespans()


def check_answer(case: OpenApiCase, app: FastAPI) -> None:
    response = case.call(app=app, headers=bearer(ADA))
    case.validate_response(response, checks=CHECKS)


@web_schema.parametrize()
@BOUNDED
def test_web_bff(case: OpenApiCase, web_app: FastAPI) -> None:
    check_answer(case, web_app)


@mobile_schema.parametrize()
@BOUNDED
def test_mobile_bff(case: OpenApiCase, mobile_app: FastAPI) -> None:
    check_answer(case, mobile_app)
