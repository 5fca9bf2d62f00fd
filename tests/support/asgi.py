"""Requests sent to an app through its ASGI interface, for what a test client cannot send (a
body that never ends, a client that leaves)."""

from typing import Any


def post_scope(path: str, fields: dict[str, str]) -> dict[str, Any]:
    """The ASGI scope of an HTTP/1.1 `POST path` with the header `fields`."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(name.lower().encode(), value.encode()) for name, value in fields.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
