"""The order of the answers to a request wrong in several ways, in every service with command
bodies (the write API, identity): an unknown path is a 404 and a wrong method a 405 whatever
the body; then a caller without a valid token gets a 401 before anything is read of its body;
only then is the body judged (415, 413, 422), as before. In every service with path and query
parameters behind a token (the write and read APIs, the BFFs), that 401 comes before what is
wrong with them too."""

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message

from bff.mobile.app import create_app as create_mobile_app
from bff.web.app import create_app as create_web_app
from contexts.settings import Settings
from identity.app import create_app as create_identity_app
from identity.main import dev_operator_token
from identity.settings import IdentitySettings
from read_api.app import create_app as create_read_app
from tests.support.api import assert_problem
from tests.support.asgi import post_scope
from tests.support.auth import IDENTITY, OPERATOR, bearer
from tests.support.bff import bff_settings
from write_api.app import create_app as create_write_app

TEXT = {"Content-Type": "text/plain"}
JSON = {"Content-Type": "application/json"}
HUGE = 10 * 1024 * 1024


@dataclass(frozen=True)
class Service:
    """A service's app, where it takes a JSON body, where a command takes none, a path that
    exists without POST, and the headers of a caller it lets in."""

    client: TestClient
    with_body: str
    without_body: str
    no_post: str
    credentials: dict[str, str]


def _write_api(tmp_path: Path) -> Iterator[Service]:
    with TestClient(create_write_app(Settings(data_dir=tmp_path))) as client:
        deactivate = f"/users/{uuid.uuid4()}/deactivate"
        yield Service(client, "/users", deactivate, "/healthz", OPERATOR)


def _identity(tmp_path: Path) -> Iterator[Service]:
    settings = IdentitySettings(data_dir=tmp_path, identity_password_profile="CHEAPEST")
    with TestClient(create_identity_app(settings)) as client:
        token = dev_operator_token(client.app.state.identity)  # type: ignore[attr-defined]
        yield Service(client, "/accounts", "/keys/rotate", "/jwks.json", bearer(token))


SERVICES: dict[str, Callable[[Path], Iterator[Service]]] = {
    "write_api": _write_api,
    "identity": _identity,
}


@pytest.fixture(params=sorted(SERVICES), scope="module")
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    yield from SERVICES[request.param](tmp_path_factory.mktemp(request.param))


def answer_unread(
    client: TestClient, path: str, headers: dict[str, str], length: int
) -> tuple[int, dict[str, Any], bool]:
    """POST `path` to the app with `headers` and a declared body of `length` bytes, through its
    ASGI interface: the status, the problem, and whether the app asked for the body."""
    asked: list[bool] = []
    sent: list[Message] = []
    fields = {**headers, "content-length": str(length), "host": "testserver"}
    scope = post_scope(path, fields)

    async def receive() -> Message:
        asked.append(True)
        return {"type": "http.request", "body": b"x" * length, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    assert client.portal is not None  # the client's lifespan runs
    client.portal.call(client.app, scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), bool(asked)


@pytest.mark.parametrize(
    ("where", "headers", "length"),
    [
        ("with_body", TEXT, 5),  # not JSON
        ("with_body", JSON, HUGE),  # over the limit
        ("with_body", {"Content-Type": "application/json; charset=latin-1"}, 5),
        ("without_body", JSON, 8),  # a stray body
        ("without_body", TEXT, 8),
    ],
)
@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["no token", "bad token"])
def test_a_caller_without_a_valid_token_is_401_before_its_body_is_read(
    service: Service, where: str, headers: dict[str, str], length: int, token: str | None
) -> None:
    sent = {**headers, **(bearer(token) if token else {})}
    status, problem, read = answer_unread(service.client, getattr(service, where), sent, length)
    assert (status, problem["type"]) == (401, "/problems/unauthenticated"), problem
    assert not read


@pytest.mark.parametrize("token", [False, True], ids=["no token", "token"])
def test_routing_answers_before_the_body_gate(service: Service, token: bool) -> None:
    headers = {**TEXT, **(service.credentials if token else {})}
    client = service.client
    assert_problem(client.post("/no/such/path", content="x", headers=headers), 404)
    assert_problem(client.post(service.no_post, content="x", headers=headers), 405)
    assert_problem(client.put(service.with_body, content="x", headers=headers), 405)


def test_a_caller_with_a_valid_token_gets_the_body_s_answers(service: Service) -> None:
    client, credentials = service.client, service.credentials
    text = client.post(service.with_body, content="x", headers={**TEXT, **credentials})
    assert_problem(text, 415, "application/json")
    status, problem, _ = answer_unread(client, service.with_body, {**JSON, **credentials}, HUGE)
    assert (status, problem["type"]) == (413, "/problems/content-too-large")
    stray = client.post(service.without_body, content='{"a": 1}', headers={**JSON, **credentials})
    assert "takes no body" in assert_problem(stray, 422, "body")["errors"][0]["message"]


USER = {"Authorization": f"Bearer {IDENTITY.token(str(uuid.uuid4()), ['user'], seconds=24 * 3600)}"}
ASKED: dict[str, Callable[[Path], Any]] = {
    "write_api": lambda folder: create_write_app(Settings(data_dir=folder)),
    "read_api": lambda folder: create_read_app(Settings(data_dir=folder)),
    "web_bff": lambda _: create_web_app(bff_settings("http://127.0.0.1:9")),
    "mobile_bff": lambda _: create_mobile_app(bff_settings("http://127.0.0.1:9")),
}
ORDER = f"/orders/{uuid.uuid4()}"
CHECKED = [  # refused on the raw path and query string (`runtime.http.query_string`)
    ("write_api", "/users/%zz", "path.user_id"),
    ("write_api", "/users/%FF", "path.user_id"),
    ("write_api", f"{ORDER}?as_of=2026-01-01T00:00:00Z&as_of=2026-01-02T00:00:00Z", "query.as_of"),
    ("write_api", f"{ORDER}?as_of=%zz", "query.as_of"),
    ("read_api", "/users/%zz", "path.user_id"),
    ("read_api", "/orders?limit=1&limit=2", "query.limit"),
    ("read_api", "/orders?limit=%zz", "query.limit"),
    ("web_bff", "/web/dashboard?position=users:1&position=users:2", "query.position"),
    ("web_bff", "/web/dashboard?wait=%zz", "query.wait"),
    ("mobile_bff", "/mobile/orders/%zz", "path.order_id"),
    ("mobile_bff", "/mobile/orders?limit=1&limit=2", "query.limit"),
]
VALIDATED = [  # refused by FastAPI's validation of the parameters' values
    ("write_api", "/users/not-a-uuid", "path.user_id"),
    ("read_api", "/orders?limit=0", "query.limit"),
    ("web_bff", "/web/dashboard?wait=soon", "query.wait"),
    ("mobile_bff", "/mobile/orders/not-a-uuid", "path.order_id"),
    ("mobile_bff", "/mobile/orders?limit=99", "query.limit"),  # checked by the route itself
    ("mobile_bff", "/mobile/me?wait=99", "query.wait"),  # checked by a dependency
]


@pytest.fixture(scope="module")
def asked(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """A client of the service `request.param` (indirect)."""
    with TestClient(ASKED[request.param](tmp_path_factory.mktemp(request.param))) as client:
        yield client


@pytest.mark.parametrize(("asked", "path", "field"), CHECKED, indirect=["asked"])
@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["no token", "bad token"])
def test_a_caller_without_a_valid_token_is_401_whatever_its_path_and_query(
    asked: TestClient, path: str, field: str, token: str | None
) -> None:
    answer = asked.get(path, headers=bearer(token) if token else {})
    assert_problem(answer, 401)
    assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("asked", "path", "field"), CHECKED + VALIDATED, indirect=["asked"])
@pytest.mark.parametrize("caller", [USER, OPERATOR], ids=["user", "operator"])
def test_a_caller_with_a_valid_token_gets_the_parameters_422(
    asked: TestClient, path: str, field: str, caller: dict[str, str]
) -> None:
    """Before the 403 of a BFF's operator who names no user, too."""
    assert_problem(asked.get(path, headers=caller), 422, field)


@pytest.mark.parametrize(
    ("asked", "path"),
    [("web_bff", "/web/dashboard"), ("mobile_bff", "/mobile/me"), ("mobile_bff", "/mobile/orders")],
    indirect=["asked"],
)
def test_a_bff_s_operator_who_names_no_user_gets_a_403_once_the_parameters_pass(
    asked: TestClient, path: str
) -> None:
    assert_problem(asked.get(path, headers=OPERATOR), 403)
