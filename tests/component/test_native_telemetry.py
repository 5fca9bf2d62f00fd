"""FastAPI's native OpenTelemetry stays off in the project's apps (`runtime.http.telemetry`),
even where a process has a global tracer provider configured: strata exports no spans, and a
request does not pay for asking."""

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace

from bff.web.app import create_app as create_web_app
from contexts.settings import Settings
from read_api.app import create_app as create_read_app
from tests.support.bff import bff_settings
from write_api.app import create_app as create_write_app


class RecordingProvider(trace.TracerProvider):
    """A configured provider (neither the API's deferred proxy nor its no-op) that notes who
    asks it for a tracer."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> Any:
        self.asked.append(instrumenting_module_name)
        return trace.NoOpTracer()


@pytest.mark.parametrize(
    "create",
    [
        lambda folder: create_write_app(Settings(data_dir=folder)),
        lambda folder: create_read_app(Settings(data_dir=folder)),
        lambda _: create_web_app(bff_settings("http://127.0.0.1:9")),
    ],
    ids=["write_api", "read_api", "web_bff"],
)
def test_no_request_asks_for_a_tracer(
    create: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = RecordingProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    app: FastAPI = create(tmp_path)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200

    assert provider.asked == []


def test_a_bare_fastapi_app_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider above is one FastAPI takes for configured: the test above can fail."""
    provider = RecordingProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    app = FastAPI()
    app.get("/healthz")(lambda: {"status": "ok"})
    with TestClient(app) as client:
        client.get("/healthz")

    assert provider.asked != []
