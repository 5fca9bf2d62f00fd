"""Schemathesis against the identity service's OpenAPI document, in process, beside a real users
write service: generated requests, valid and invalid, to every operation. Every answer must be
no server error, of a documented status, with the documented body and content type. Bounded and
derandomized, as the write and read APIs' run (tests/component/test_schemathesis.py)."""

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from identity.app import create_app
from identity.settings import IdentitySettings
from tests.support.openapi import OpenApiCase, document_only_data_dir

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
BOUNDED = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
_UNUSED = IdentitySettings(data_dir=document_only_data_dir(), identity_password_profile="CHEAPEST")
identity_schema = schemathesis.openapi.from_dict(
    create_app(_UNUSED).openapi(), config=schemathesis.Config.from_dict({"seed": 20260703})
)


@pytest.fixture(scope="module")
def identity_app(tmp_path_factory: pytest.TempPathFactory, users_url: str) -> Iterator[FastAPI]:
    settings = IdentitySettings(
        data_dir=tmp_path_factory.mktemp("identity-schemathesis"),
        write_urls=f"users={users_url}",
        identity_password_profile="CHEAPEST",
        request_timeout=60,
    )
    try:
        yield create_app(settings)
    finally:
        shutdown_lifespans()


@identity_schema.parametrize()
@BOUNDED
def test_identity_api(case: OpenApiCase, identity_app: FastAPI) -> None:
    case.validate_response(case.call(app=identity_app), checks=CHECKS)
