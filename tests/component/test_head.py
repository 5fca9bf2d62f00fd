"""HEAD wherever GET (RFC 9110 §9.3.2), in every API: the GET's status and headers, no body
(the read API process and the BFFs: tests/component/test_bff.py; identity:
tests/component/identity/test_identity_api.py)."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from contexts.settings import Settings
from embedded.app import create_app
from tests.support.api import assert_head_is_get_without_body, assert_problem
from tests.support.auth import OPERATOR


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The write and read APIs in one process (embedded), as an operator."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("head") / "var")
    with TestClient(create_app(settings), headers=OPERATOR) as client:
        yield client


def test_the_write_and_read_apis_answer_head_like_get(embedded: TestClient) -> None:
    client = embedded
    created = client.post("/users", json={"name": "Ada", "email": "head@example.com"}).json()
    read = f"/read/users/{created['id']}?position={created['position']}"
    for path in (f"/users/{created['id']}", read, "/healthz"):
        assert_head_is_get_without_body(client.get(path), client.head(path))


def test_head_where_get_is_not_served_is_still_405(embedded: TestClient) -> None:
    response = embedded.head("/users")
    assert response.status_code == 405
    assert response.content == b""
    assert_problem(embedded.get("/users"), 405)


def test_a_trailing_slash_is_a_404_not_a_redirect(embedded: TestClient) -> None:
    """Behind the gateway a redirect to the path without its slash would drop the route's
    prefix (`/read/users/1/` to `/users/1`, the write side), and name the client's `Host`."""
    created = embedded.post("/users", json={"name": "Ada", "email": "slash@example.com"}).json()
    for path in (f"/users/{created['id']}/", f"/read/users/{created['id']}/", "/read/orders/"):
        response = embedded.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
        assert_problem(response, 404)
        assert "location" not in response.headers
