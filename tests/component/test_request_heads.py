"""Request heads the services' HTTP server refuses (`ProblemHttpProtocol`, which every server of
the project runs), and a body it leaves unread, through a real uvicorn server on a loopback
port and raw sockets: the write API's app, as any would be."""

import json
import socket
import time
from collections.abc import Iterator

import pytest

from contexts.settings import Settings
from runtime.http.request_heads import (
    MAX_FIELD_BYTES,
    MAX_FIELDS,
    MAX_HEAD_BYTES,
    MAX_TARGET_BYTES,
)
from runtime.http.unreadable_requests import ProblemHttpProtocol
from tests.support.raw_http import raw_exchange
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


def assert_refused(status: str, headers: dict[str, str], body: bytes, code: int, slug: str) -> None:
    assert status.startswith(f"HTTP/1.1 {code} "), status
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert (problem["status"], problem["type"]) == (code, f"/problems/{slug}"), problem


@pytest.mark.parametrize(
    ("request_bytes", "code", "slug"),
    [
        (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "bad-request"),  # no Host
        (GET + b"Host: y\r\n\r\n", 400, "bad-request"),  # two
        (GET + b"HOST: x\r\n\r\n", 400, "bad-request"),
        (b"GET /healthz HTTP/1.1\r\nHost: x,y\r\n\r\n", 400, "bad-request"),  # joined
        (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http-version-not-supported"),
        (b"GET /healthz HTTP/0.9\r\nHost: x\r\n\r\n", 505, "http-version-not-supported"),
        (b"GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n", 505, "http-version-not-supported"),
        (GET + b"X-Big: " + b"a" * MAX_FIELD_BYTES + b"\r\n\r\n", 431, "headers-too-large"),
        (GET + b"X-A: b\r\n" * MAX_FIELDS + b"\r\n", 431, "headers-too-large"),
        (GET + (b"X-A: " + b"b" * 7000 + b"\r\n") * 9 + b"\r\n", 431, "headers-too-large"),
        (
            b"GET /healthz?" + b"a" * MAX_TARGET_BYTES + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "uri-too-long",
        ),
        (b"GET /" + b"a" * MAX_HEAD_BYTES + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri-too-long"),
    ],
    ids=[
        "no Host",
        "two Host",
        "two Host, any case",
        "two Host joined",
        "HTTP/2.0",
        "HTTP/0.9",
        "HTTP/1.2",
        "a field over 8 KiB",
        "100 fields and Host",
        "fields over 60 KiB",
        "a target over 8 KiB",
        "a line over 60 KiB",
    ],
)
def test_a_malformed_head_is_refused_and_the_connection_closed(
    base: str, request_bytes: bytes, code: int, slug: str
) -> None:
    assert_refused(*raw_exchange(base, request_bytes), code, slug)


def test_a_head_in_two_reads_is_measured_whole(base: str) -> None:
    """A small second read does not hide a field over the limit begun in the first."""
    head = GET + b"X-Big: " + b"a" * (MAX_FIELD_BYTES + 100) + b"\r\n\r\n"
    with connect(base) as connection:
        connection.sendall(head[:-2000])
        time.sleep(0.2)  # two reads, not one
        connection.sendall(head[-2000:])
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_a_head_without_end_is_refused_as_it_arrives(base: str) -> None:
    """A field that does not end is answered 431 once 60 KiB of it past the first read are in,
    without waiting for its end (an 8 MB field is not buffered)."""
    with connect(base) as connection:
        connection.sendall(GET + b"X-Big: " + b"a" * 100_000)
        time.sleep(0.2)  # another read
        connection.sendall(b"a" * 100_000)
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_a_target_without_end_is_refused_as_it_arrives(base: str) -> None:
    """A request target that does not end is answered 414 once it is read past its limit, not
    buffered up to the head's."""
    with connect(base) as connection:
        connection.sendall(b"GET /" + b"a" * 4000)
        time.sleep(0.2)  # another read
        connection.sendall(b"a" * (MAX_TARGET_BYTES - 3000))
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 414 "), answer[:200]


def test_a_target_at_its_limit_is_served(base: str) -> None:
    target = b"/healthz?pad=" + b"a" * (MAX_TARGET_BYTES - len(b"/healthz?pad="))
    status, _, body = raw_exchange(base, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == "HTTP/1.1 200 OK" and json.loads(body) == {"status": "ok"}


def test_http_1_0_needs_no_host(base: str) -> None:
    status, _, body = raw_exchange(base, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.1 200 OK" and json.loads(body) == {"status": "ok"}


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
