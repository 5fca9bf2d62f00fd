"""uvicorn's HTTP/1.1 protocol, answering a request it cannot parse (an unknown method, a byte
a header may not hold, `Content-Length` with chunked, a request line over its limit) with a
problem+json 400 like every other refusal, instead of its text/plain one. The gateway answers
the same requests the same way (`gateway/filters.py`), so a client sees one kind of error with
or without it. No `instance`: the request line may be what could not be read."""

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from runtime.http.openapi import PROBLEM_JSON
from runtime.http.problem_types import BAD_REQUEST

UNREADABLE = json.dumps(
    {
        "type": BAD_REQUEST.uri,
        "title": BAD_REQUEST.title,
        "status": BAD_REQUEST.status,
        "detail": "the request is not valid HTTP/1.1",
    }
).encode()


class ProblemHttpProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head += [
            b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
            b"content-length: " + str(len(UNREADABLE)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + UNREADABLE)
        self.transport.close()
