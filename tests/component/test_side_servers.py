"""The HTTP endpoints of the processes that are not APIs (the relay, the config sidecar, the
projector: runtime/http/side_server.py) answer as the APIs do: HEAD wherever GET, without the
body (RFC 9110 §9.3.2), and a path or method they do not serve and an unexpected error in
problem details."""

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry, Counter
from starlette.testclient import TestClient
from starlette.types import ASGIApp

from eventlog.relay_main import Running, Starting
from eventlog.relay_main import create_http_app as relay_app
from projections.main import create_http_app as projector_app
from projections.metrics import ProjectorMetrics
from sidecar.main import create_http_app as sidecar_app
from tests.support.api import assert_head_is_get_without_body, assert_problem

ROUTES = ("/healthz", "/readyz", "/metrics")


def _double(**members: object) -> Any:
    """A stand-in with just these members (the endpoints read no others)."""
    return cast(Any, SimpleNamespace(**members))


def _registry() -> CollectorRegistry:
    """A registry with a metric in it, so /metrics has a body."""
    registry = CollectorRegistry()
    Counter("strata_side_server_test", "A counter.", registry=registry).inc()
    return registry


def _relay(relay: Any = None) -> ASGIApp:
    nats = _double(is_connected=True)
    recorder = _double(ping=lambda: None)
    if relay is None:
        relay = _double(halted=None, active=True)
    opened = _double(waiting_for=None)
    starting = Starting(opened, opened)
    starting.running = Running(nats, recorder, relay)
    return relay_app("orders", starting, _registry())


def _sidecar() -> ASGIApp:
    follower = _double(not_ready=None)
    connecting = _double(nc=_double(is_connected=True))
    return sidecar_app("write-orders", connecting, follower, _registry())


def _projector() -> ASGIApp:
    async def no_problems() -> dict[str, str]:
        return {}

    projecting = _double(
        metrics=ProjectorMetrics(CollectorRegistry()), runners=[], problems=no_problems
    )
    return projector_app(projecting)


APPS: dict[str, Callable[[], ASGIApp]] = {
    "relay": _relay,
    "config sidecar": _sidecar,
    "projector": _projector,
}


@pytest.fixture(params=sorted(APPS))
def client(request: pytest.FixtureRequest) -> TestClient:
    return TestClient(APPS[request.param]())


@pytest.mark.parametrize("path", ROUTES)
def test_head_is_answered_as_get_without_the_body(client: TestClient, path: str) -> None:
    assert_head_is_get_without_body(client.get(path), client.head(path))


def test_a_method_not_served_is_a_405_problem(client: TestClient) -> None:
    for path in ROUTES:
        assert_problem(client.post(path), 405)
        assert_problem(client.delete(path), 405)


def test_a_path_not_served_is_a_404_problem(client: TestClient) -> None:
    for path in ("/nothing", "/healthz/"):
        assert_problem(client.get(path, follow_redirects=False), 404)
        head = client.head(path, follow_redirects=False)
        assert head.status_code == 404
        assert head.headers["content-type"] == "application/problem+json"
        assert head.content == b""


SECRET = "token=s3cr3t in a failing dependency's message"


class _Broken:
    """A stand-in whose every member raises: an error no endpoint expects."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(SECRET)


def _broken() -> Any:
    return _Broken()


async def _no_problems_but_broken() -> dict[str, str]:
    raise RuntimeError(SECRET)


BROKEN: dict[str, Callable[[], ASGIApp]] = {
    "relay": lambda: _relay(relay=_broken()),
    "config sidecar": lambda: sidecar_app("write-orders", _broken(), _double(), _registry()),
    "projector": lambda: projector_app(
        _double(metrics=None, runners=[], problems=_no_problems_but_broken)
    ),
}


@pytest.mark.parametrize("app", sorted(BROKEN))
def test_an_unexpected_error_is_a_500_problem_that_does_not_show_it(
    app: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(BROKEN[app](), raise_server_exceptions=False)

    response = client.get("/readyz")

    body = assert_problem(response, 500, "an unexpected error occurred")
    assert body["type"] == "/problems/internal-error"
    assert SECRET not in response.text
    assert SECRET in caplog.text  # logged, with its traceback
