"""A problem's `instance` is the path the client asked for, behind the gateway too."""

from starlette.requests import Request

from runtime.http.problems import instance_of


def request(path: str, headers: dict[str, str] | None = None) -> Request:
    raw = [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    return Request({"type": "http", "method": "GET", "path": path, "headers": raw})


def test_the_path_the_gateway_rewrote_is_the_one_the_client_asked_for() -> None:
    rewritten = request("/users/1", {"x-envoy-original-path": "/read/users/1?position=users:3"})

    assert instance_of(rewritten) == "/read/users/1"
    assert instance_of(request("/users/1")) == "/users/1"
