"""Requests no HTTP client would send, as raw bytes on a socket, and the answer read back whole
(the server closes the connection after refusing them)."""

import socket


def raw_exchange(base: str, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send `request` to the server at `base` (`http://host:port`): its status line, its
    headers (names in lower case) and its body."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return status, headers, body
