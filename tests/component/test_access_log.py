"""The services' request lines (uvicorn's access lines and httpx's, through `runtime.logs`)
name the path without its query string: a query may hold what must not be written down."""

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from runtime import logs
from runtime.http.unreadable_requests import ProblemHttpProtocol


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def captured() -> Iterator[Lines]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    lines = Lines()
    try:
        yield lines
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def factory(lines: Lines) -> FastAPI:
    """An app factory as the services' own: it configures the process's logs."""
    logs.configure("info")
    logging.getLogger().addHandler(lines)
    app = FastAPI()

    @app.get("/jwks.json")
    async def jwks() -> dict[str, list[str]]:
        return {"keys": []}

    return app


def test_an_access_line_has_the_path_without_the_query(captured: Lines) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        lambda: factory(captured),
        factory=True,
        host="127.0.0.1",
        port=port,
        log_config=None,
        http=ProblemHttpProtocol,
        access_log=False,  # as runtime.http.serve has it: the JSON logs decide
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        answer = httpx.get(f"http://127.0.0.1:{port}/jwks.json?secret=hunter2&token=abc")
        assert answer.status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)
    access = [line for line in captured.lines if line["logger"] == "uvicorn.access"]
    assert access, captured.lines
    assert all("hunter2" not in json.dumps(line) for line in captured.lines), captured.lines
    assert '"GET /jwks.json HTTP/1.1" 200' in str(access[0]["message"])
    client = [line for line in captured.lines if line["logger"] == "httpx"]
    assert f"GET http://127.0.0.1:{port}/jwks.json " in str(client[0]["message"])


def test_a_record_without_a_request_line_s_arguments_is_left_alone() -> None:
    record = logging.LogRecord("uvicorn.access", 20, "", 0, "odd %s", ("a?b",), None)
    assert logs.WithoutQuery(0).filter(record) and record.getMessage() == "odd a?b"
