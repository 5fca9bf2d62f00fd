"""A body the services' HTTP server leaves unread (`ProblemHttpProtocol`, which every server of
the project runs), through a real uvicorn server on a loopback port and raw sockets: the write
API's app, as any would be."""

import socket
from collections.abc import Iterator

import pytest

from contexts.settings import Settings
from runtime.http.unreadable_requests import ProblemHttpProtocol
from tests.support.threaded_server import served
from write_api.app import create_app

GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("heads")))
    with served(app, http=ProblemHttpProtocol) as url:
        yield url


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def test_a_401_leaves_the_body_unread_and_the_connection_serves_on(base: str) -> None:
    """The answer comes before the body is sent; the body then sent is read past, and the next
    request on the connection is answered."""
    length = 1024 * 1024
    with connect(base) as connection:
        head = b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        connection.sendall(head + b"Content-Length: %d\r\n\r\n" % length)
        answer = connection.recv(65536)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
        assert b"/problems/unauthenticated" in answer
        connection.sendall(b"x" * length + GET + b"\r\n")
        following = b""
        while b'{"status":"ok"}' not in following:
            chunk = connection.recv(65536)
            assert chunk, following
            following += chunk
    assert following.startswith(b"HTTP/1.1 200 OK")
