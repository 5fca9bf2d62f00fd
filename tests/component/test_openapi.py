"""The OpenAPI documents of the services, and README's table of problem types, against the
code."""

import ast
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bff.mobile.app import create_app as create_mobile_app
from bff.web.app import create_app as create_web_app
from contexts.settings import Settings
from embedded.app import create_app as create_embedded_app
from identity.app import create_app as create_identity_app
from identity.settings import IdentitySettings
from read_api.app import create_app as create_read_app
from runtime.http import problem_types
from runtime.http.openapi import PROBLEM_JSON, PROBLEM_SCHEMAS
from runtime.http.problem_types import PROBLEM_TYPES, ProblemType, problem_table
from tests.support.api import assert_problem, register
from tests.support.bff import bff_settings
from tests.support.openapi import document_only_data_dir
from write_api.app import create_app as create_write_app

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    "domain",
    "runtime",
    "eventlog",
    "write_api",
    "read_api",
    "projections",
    "replay",
    "embedded",
    "gateway",
]
CATALOG = ROOT / "runtime" / "http" / "problem_types.py"
STATUSES = {p.uri: p.status for p in PROBLEM_TYPES}
APPS: dict[str, Callable[[Settings], FastAPI]] = {
    "write": create_write_app,
    "read": create_read_app,
    "embedded": create_embedded_app,
}


def document(name: str) -> dict[str, Any]:
    """The OpenAPI document of a service: of APPS, `identity`, `bff-web` or `bff-mobile`."""
    if name == "identity":
        return create_identity_app(IdentitySettings(data_dir=Path("unused"))).openapi()
    if name.startswith("bff-"):
        create_bff = create_web_app if name == "bff-web" else create_mobile_app
        return create_bff(bff_settings("http://127.0.0.1:1")).openapi()
    settings = Settings(data_dir=document_only_data_dir())
    app: FastAPI = APPS[name](settings)  # opens nothing until started
    return app.openapi()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, spec)
        for path, item in doc["paths"].items()
        for method, spec in item.items()
    ]


def problem_types_of(response: dict[str, Any]) -> set[str]:
    schema = response["content"][PROBLEM_JSON]["schema"]
    variants = schema.get("anyOf", [schema])
    return {uri for v in variants for uri in v["allOf"][1]["properties"]["type"]["enum"]}


@pytest.mark.parametrize("name", APPS)
def test_every_error_response_is_documented_as_problem_json(name: str) -> None:
    doc = document(name)
    for method, path, spec in operations(doc):
        errors = {code: r for code, r in spec["responses"].items() if int(code) >= 400}
        assert "500" in errors, f"{method} {path}"
        for code, response in errors.items():
            assert list(response["content"]) == [PROBLEM_JSON], f"{method} {path} {code}"
            statuses = {STATUSES[uri] for uri in problem_types_of(response)}
            assert statuses == {int(code)}, f"{method} {path} {code}"
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert PROBLEM_SCHEMAS.items() <= schemas.items()


@pytest.mark.parametrize("name", APPS)
def test_validation_errors_are_documented_where_fastapi_put_its_own(name: str) -> None:
    for method, path, spec in operations(document(name)):
        takes_input = bool(spec.get("parameters")) or "requestBody" in spec
        assert ("422" in spec["responses"]) == takes_input, f"{method} {path}"
        if takes_input:
            assert "/problems/validation-error" in problem_types_of(spec["responses"]["422"])


def test_a_command_documents_each_problem_it_can_answer_and_its_headers() -> None:
    responses = document("write")["paths"]["/users/{user_id}/email"]["put"]["responses"]
    documented = {code: problem_types_of(r) for code, r in responses.items() if int(code) >= 400}
    assert documented == {
        "400": {"/problems/http-error"},
        "401": {"/problems/unauthenticated"},
        "403": {"/problems/forbidden"},
        "404": {"/problems/not-found"},
        "409": {"/problems/rule-violated", "/problems/value-taken"},
        "412": {"/problems/version-mismatch"},
        "413": {"/problems/content-too-large"},
        "415": {"/problems/unsupported-media-type"},
        "422": {
            "/problems/validation-error",
            "/problems/invalid-value",
            "/problems/idempotency-key-reused",
        },
        "429": {"/problems/rate-limited"},
        "500": {"/problems/internal-error"},
        "503": {"/problems/service-unavailable"},
    }
    assert set(responses["429"]["headers"]) == {"Retry-After"}
    assert set(responses["200"]["headers"]) == {"ETag", "X-Correlation-Id", "Idempotent-Replayed"}
    assert set(responses["503"]["headers"]) == {"Retry-After"}
    created = document("write")["paths"]["/users"]["post"]["responses"]["201"]
    assert {"ETag", "Location"} <= set(created["headers"])


@pytest.mark.parametrize("name", [*APPS, "identity"])
def test_every_operation_but_health_and_metrics_is_rate_limited(name: str) -> None:
    """A route left out of the limits would be the one a flood goes to: every service clients
    reach limits all of its routes but the probes (docs/rate-limits.md)."""
    for method, path, spec in operations(document(name)):
        refusals = spec["responses"].get("429")
        limited = refusals is not None and "/problems/rate-limited" in problem_types_of(refusals)
        probe = path.rsplit("/", 1)[-1] in ("healthz", "readyz", "metrics")
        assert limited != probe, f"{method} {path}"


@pytest.mark.parametrize("name", [*APPS, "identity", "bff-web", "bff-mobile"])
def test_every_operation_documents_the_400_of_a_malformed_trace_header(name: str) -> None:
    """`X-Correlation-Id` and `X-Causation-Id` are checked on every request, queries and probes
    too (runtime.http.trace_headers), not only on the commands that declare them."""
    for method, path, spec in operations(document(name)):
        refusals = spec["responses"].get("400")
        assert refusals is not None, f"{method} {path}"
        assert "/problems/http-error" in problem_types_of(refusals), f"{method} {path}"


def test_the_400_of_a_malformed_trace_header_on_a_query_is_the_one_documented(
    client: TestClient,
) -> None:
    response = client.get("/healthz", headers={"X-Correlation-Id": "x" * 101})
    body = assert_problem(response, 400, "X-Correlation-Id")
    documented = client.get("/openapi.json").json()["paths"]["/healthz"]["get"]["responses"]
    assert body["type"] in problem_types_of(documented["400"])


def test_a_read_documents_its_position_problems_and_headers() -> None:
    responses = document("embedded")["paths"]["/read/users/{user_id}"]["get"]["responses"]
    assert problem_types_of(responses["503"]) == {
        "/problems/service-unavailable",
        "/problems/position-not-reached",
    }
    assert set(responses["503"]["headers"]) == {"X-Read-Position", "Retry-After"}
    assert set(responses["200"]["headers"]) == {"X-Read-Position"}
    assert set(responses["404"]["headers"]) == {"X-Read-Position"}
    metrics = document("read")["paths"]["/metrics"]["get"]["responses"]["200"]
    assert list(metrics["content"]) == ["text/plain"]


def test_the_documented_problem_is_the_one_answered(client: TestClient) -> None:
    """The issue's example: `PUT /users/{id}/email` with an empty email."""
    user = register(client)
    response = client.put(f"/users/{user}/email", json={"email": ""})
    body = assert_problem(response, 422, "body.email")
    documented = client.get("/openapi.json").json()["paths"]["/users/{user_id}/email"]["put"]
    assert body["type"] in problem_types_of(documented["responses"]["422"])


def test_readme_lists_every_problem_type() -> None:
    readme = (ROOT / "README.md").read_text()
    assert problem_table() in readme
    rows = re.findall(r"^\| (\d{3}) \| `/problems/([a-z-]+)` \|", readme, flags=re.MULTILINE)
    assert sorted(rows) == sorted((str(p.status), p.slug) for p in PROBLEM_TYPES)


def test_every_problem_type_is_in_the_catalog() -> None:
    """Problem types are made in the catalog module only, all of it is listed, and a type URI
    spelled out in the code is one of them: every type an API or a process can answer with is
    in the README table (and, for the APIs, in their OpenAPI documents)."""
    defined = [v for v in vars(problem_types).values() if isinstance(v, ProblemType)]
    assert sorted(defined, key=id) == sorted(PROBLEM_TYPES, key=id)
    slugs = {p.slug for p in PROBLEM_TYPES}
    assert len(slugs) == len(PROBLEM_TYPES)
    for source in (path for package in SOURCES for path in (ROOT / package).rglob("*.py")):
        if source == CATALOG:
            continue
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            where = f"{source.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("ProblemType"):
                pytest.fail(f"{where} makes a problem type outside {CATALOG.name}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                spelled = set(re.findall(r"/problems/([a-z0-9-]+)", node.value))
                assert spelled <= slugs, f"{where}: {spelled - slugs} not in {CATALOG.name}"
