"""Metrics, unexpected errors and logs of the write API."""

import json
import logging

import pytest
from fastapi.testclient import TestClient

from runtime.logs import JsonFormatter, correlation
from tests.support.api import assert_problem, register, services
from tests.support.auth import OPERATOR


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{wanted}}} not found")


def test_metrics_count_requests_by_route_template_and_status(client: TestClient) -> None:
    user = register(client)
    client.put(f"/users/{user}/name", json={"name": "X"})
    client.put(f"/users/{user}/name", json={"name": ""})
    text = client.get("/metrics").text

    assert _metric(text, "strata_http_requests_total", route="/users", status="201") >= 1
    name_route = "/users/{user_id}/name"
    assert _metric(text, "strata_http_requests_total", route=name_route, status="200") == 1
    assert _metric(text, "strata_http_requests_total", route=name_route, status="422") == 1
    assert _metric(text, "strata_http_request_seconds_count", route=name_route) == 2
    assert _metric(text, "strata_group_commit_units_total", store="users") >= 2


def test_an_unexpected_error_is_a_500_problem_and_is_logged(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services(client).users, "register", broken)
    with caplog.at_level(logging.ERROR, logger="strata.write_api"):
        response = TestClient(client.app, raise_server_exceptions=False, headers=OPERATOR).post(
            "/users", json={"name": "Ada", "email": "ada@example.com"}
        )
    assert_problem(response, 500, "unexpected")
    assert "disk on fire" not in response.text
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert any("disk on fire" in str(error) for error in logged)


def test_log_lines_are_json_with_the_correlation_id() -> None:
    record = logging.LogRecord("strata", logging.INFO, __file__, 1, "applied %s", ("x",), None)
    record.position = 7
    with correlation("corr-9"):
        line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "applied x"
    assert line["correlation_id"] == "corr-9"
    assert line["position"] == 7
    assert line["level"] == "info"
