"""Schemathesis: generated requests, valid and invalid, to every operation of both APIs, in process.

Every answer must be no server error, and have a documented status whose body and content type
are as documented. Runs the all-in-one embedded process (the write API and the read API under
/read, SQLite), and, with PostgreSQL, each API on its own over the stack's stores. The runs are
bounded (`BOUNDED`) and derandomized: the same examples every time.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from hypothesis.internal.conjecture import providers
from hypothesis.internal.constants_ast import Constants
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from contexts.settings import CONTEXTS, Settings
from embedded.app import create_app as create_embedded_app
from read_api.app import create_app as create_read_app
from readmodels.sql import PostgresDatabase
from runtime.http.problem_types import POSITION_NOT_REACHED
from tests.support.auth import OPERATOR
from tests.support.openapi import OpenApiCase, document_only_data_dir
from tests.support.postgres import require_postgres, scratch_databases, url_settings
from tests.support.read_models import ReadModelWriter, require_redis, scratch_redis_database
from write_api.app import create_app as create_write_app

SEED = 20260703  # fixed, with `derandomize`: the same examples in every run and process
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
BOUNDED = settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure shows its first example
    suppress_health_check=list(HealthCheck),
)
TEST_SETTINGS: dict[str, Any] = {
    # Stores get all the time a busy machine needs: a 503 is a failure here.
    "request_timeout": 60,
    "db_connect_timeout": 30,
    "db_lock_timeout": 30,
    # Reads never wait long for a position: a generated `wait` above the bound is a 422.
    "read_wait_default_seconds": 0,
    "read_wait_max_seconds": 0.1,
}

# Besides values drawn from the schema, strings are sometimes values that once got through or
# broke something: control characters, non-characters, slashes, padding, lax numbers.
HOSTILE = ["\x00", "a\x00b", "\x1f", "\x7f", "\ufffe", "\uffff", "/", "a/b", " lead", "1_000.00"]
HOSTILE += ["\u0661\u0662\u0663", "\U0001d7d9.00", "1e2", "1.0"]


def _text_inputs(document: dict[str, Any]) -> set[str]:
    """`<location>.<name>` of every path and query parameter that takes a string, and of every
    field of a request body."""
    inputs = set()
    for item in document["paths"].values():
        for spec in item.values():
            for parameter in spec.get("parameters", []):
                schema = parameter["schema"]
                types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
                if parameter["in"] in ("path", "query") and "string" in types:
                    inputs.add(f"{parameter['in']}.{parameter['name']}")
            if "requestBody" in spec:
                ref = spec["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                fields = document["components"]["schemas"][ref.split("/")[-1]]["properties"]
                inputs.update(f"body.{field}" for field in fields)
    return inputs


def _document(app: FastAPI) -> schemathesis.BaseSchema:
    document = app.openapi()
    hostile = {"dictionary": "hostile", "probability": 0.15}
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "dictionaries": {"hostile": {"values": HOSTILE}},
            "parameters": dict.fromkeys(sorted(_text_inputs(document)), hostile),
        }
    )
    return schemathesis.openapi.from_dict(document, config=config)


# Building an app opens no store (its lifespan does): the documents are read at collection.
_UNUSED = Settings(data_dir=document_only_data_dir())
embedded_schema = _document(create_embedded_app(_UNUSED))
write_schema = _document(create_write_app(_UNUSED))
read_schema = _document(create_read_app(_UNUSED))


def check_answer(case: OpenApiCase, app: FastAPI) -> None:
    response = case.call(app=app, headers=OPERATOR)
    checks = CHECKS
    if _position_not_reached(response):
        # The documented answer to a `position` the log never reached: not a server fault.
        checks = [check for check in CHECKS if check is not not_a_server_error]
    case.validate_response(response, checks=checks)


def _position_not_reached(response: schemathesis.Response) -> bool:
    content_type = response.headers.get("content-type", [""])[0]
    if response.status_code != 503 or not content_type.startswith("application/problem+json"):
        return False
    return bool(response.json().get("type") == POSITION_NOT_REACHED.uri)


@pytest.fixture(scope="module", autouse=True)
def same_examples_whatever_else_is_imported() -> Iterator[None]:
    """Hypothesis mixes into its draws constants found in the local modules imported so far,
    which depend on the tests collected with these: without them, a run draws the same examples
    alone or within the whole suite (Hypothesis has no setting for this)."""
    no_constants = Constants()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(providers, "_get_local_constants", lambda: no_constants)
        providers.CONSTANTS_CACHE.cache.clear()
        yield
    providers.CONSTANTS_CACHE.cache.clear()


@contextmanager
def serving(app: FastAPI) -> Iterator[FastAPI]:
    """Schemathesis starts an app's lifespan on its first request and keeps it: stop it (and
    any other) when the app's stores are about to go."""
    try:
        yield app
    finally:
        shutdown_lifespans()


@pytest.fixture(scope="module")
def embedded_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    data_dir = tmp_path_factory.mktemp("schemathesis") / "var"
    with serving(create_embedded_app(Settings(data_dir=data_dir, **TEST_SETTINGS))) as app:
        yield app


@pytest.fixture(scope="module")
def stack_write_app() -> Iterator[FastAPI]:
    with scratch_databases(require_postgres(), *CONTEXTS) as urls:
        settings = Settings(**url_settings(urls), **TEST_SETTINGS)
        with serving(create_write_app(settings)) as app:
            yield app


@pytest.fixture(scope="module")
def stack_read_app() -> Iterator[FastAPI]:
    with (
        scratch_databases(require_postgres(), "read") as urls,
        scratch_redis_database(require_redis()) as redis_url,
    ):
        # Tables and checkpoints as a projector leaves them before its first event.
        ReadModelWriter(PostgresDatabase(urls["read"]), redis.Redis.from_url(redis_url)).close()
        settings = Settings(read_database_url=urls["read"], redis_url=redis_url, **TEST_SETTINGS)
        with serving(create_read_app(settings)) as app:
            yield app


@embedded_schema.parametrize()
@BOUNDED
def test_embedded_process(case: OpenApiCase, embedded_app: FastAPI) -> None:
    check_answer(case, embedded_app)


@pytest.mark.postgres
@write_schema.parametrize()
@BOUNDED
def test_write_api_on_stack(case: OpenApiCase, stack_write_app: FastAPI) -> None:
    check_answer(case, stack_write_app)


@pytest.mark.postgres
@read_schema.parametrize()
@BOUNDED
def test_read_api_on_stack(case: OpenApiCase, stack_read_app: FastAPI) -> None:
    check_answer(case, stack_read_app)
