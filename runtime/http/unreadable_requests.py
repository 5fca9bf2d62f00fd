"""uvicorn's HTTP/1.1 protocol, refusing what httptools would pass on or uvicorn answer in text,
with a problem+json body like every other refusal, then closing the connection:

- a request it cannot parse (an unknown method, a byte a header may not hold, `Content-Length`
  with chunked): 400, as the gateway answers it (`gateway/filters.py`), so a client sees one
  kind of error with or without it;
- a HTTP/1.1 request without `Host`, or any with two (or one joining several with commas):
  400;
- a version other than HTTP/1.0 and HTTP/1.1 (`HTTP/2.0` on this HTTP/1 connection, `HTTP/0.9`,
  or one httptools cannot read, `HTTP/1.2`): 505;
- a request target over `MAX_TARGET_BYTES`: 414, as soon as it is read that long;
- a head over the other limits of `runtime.http.request_heads`: 431, when it ends, or, for a
  head that does not end, once the bytes received for it pass `MAX_HEAD_BYTES` (so an endless
  field is refused after the first read and some 60 KiB more, not buffered).

The checks run once per request, when its head ends, on what uvicorn has parsed: a head that
arrived in at most 8 KiB (counting the whole of the chunks it came in) is not measured, as it
cannot be over a size limit.

No `instance`: the request line may be what could not be read.
"""

import sys

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from runtime.http.openapi import PROBLEM_JSON
from runtime.http.request_heads import (
    HEAD_TOO_LARGE,
    MAX_HEAD_BYTES,
    MAX_TARGET_BYTES,
    TARGET_TOO_LONG,
    UNKNOWN_VERSION,
    UNREADABLE,
    Refusal,
    judged,
)

UNREADABLE_VERSION = "Invalid HTTP version"
"""httptools' reason for a request line naming a version it does not know (`HTTP/1.2`)."""


class Refused(Exception):
    """Raised in a parser callback to stop parsing; httptools raises its own error instead,
    which uvicorn answers through `send_400_response`."""


class ProblemHttpProtocol(HttpToolsProtocol):
    _in_head = False
    """Whether a request's head has begun and not ended."""
    _arrived = 0
    """The bytes received while a head was unfinished before them (what the parser may hold
    of it): a head without end is refused once they pass `MAX_HEAD_BYTES`."""
    _fed = 0
    """The bytes of the last chunk received."""
    _first = 0
    """The bytes of the chunk the current head began in (some may be another request's)."""
    _refusal: Refusal | None = None

    def data_received(self, data: bytes) -> None:
        self._fed = len(data)
        if self._in_head:
            self._arrived += self._fed
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        if len(self.url) > MAX_TARGET_BYTES:
            self._answer(TARGET_TOO_LONG)
        elif self._arrived > MAX_HEAD_BYTES:
            self._answer(HEAD_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._first = True, self._fed

    def on_headers_complete(self) -> None:
        received, self._in_head, self._arrived = self._first + self._arrived, False, 0
        version = self.parser.get_http_version()
        refusal = judged(version, self.url, self.headers, received)
        if refusal is not None:
            self._refusal = refusal
            raise Refused(refusal.detail)
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        refusal, self._refusal = self._refusal, None
        error = sys.exception()  # uvicorn calls this while handling httptools' error
        if refusal is None and isinstance(error, httptools.HttpParserError):
            refusal = UNKNOWN_VERSION if str(error) == UNREADABLE_VERSION else None
        self._answer(refusal or UNREADABLE)

    def _answer(self, refusal: Refusal) -> None:
        body = refusal.body()
        head = [refusal.status_line()]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head += [
            b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
