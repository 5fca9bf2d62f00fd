"""What the services' HTTP server refuses in a request's head, and its problem+json answers.

httptools (uvicorn's parser) takes any number of header fields of any size, two `Host` fields,
none, and request lines saying `HTTP/2.0` or `HTTP/0.9`; uvicorn sets no limit either. The
protocol (`runtime.http.unreadable_requests`) judges a head when it ends (and one that does not
end by the bytes received for it) against these limits, close to the common servers' defaults:

- `MAX_FIELD_BYTES`, 8 KiB a field line, name and value, and `MAX_TARGET_BYTES`, 8 KiB the
  request target, its path and query (nginx: `large_client_header_buffers 4 8k`, a line each);
- `MAX_HEAD_BYTES`, 60 KiB for the request line and all the fields (Envoy's default
  `max_request_headers_kb`, so the gateway and the services refuse alike);
- `MAX_FIELDS`, 100 fields (Envoy's default `max_headers_count`);

and answers 414 to a request target over its limit (RFC 9110 §15.5.15), 431 past another, 400
to a HTTP/1.1 request without `Host` or any request with two (RFC 9112 §3.2), or one whose value
joins several with commas (as a proxy combining two fields forwards them: Envoy does; no host
name holds a comma), 505 to a version other than HTTP/1.0 and HTTP/1.1.
"""

import json
from dataclasses import dataclass
from http import HTTPStatus

from runtime.http.problem_types import (
    BAD_REQUEST,
    HEADERS_TOO_LARGE,
    HTTP_VERSION_NOT_SUPPORTED,
    URI_TOO_LONG,
    ProblemType,
)

MAX_FIELD_BYTES = 8 * 1024
MAX_TARGET_BYTES = 8 * 1024
MAX_HEAD_BYTES = 60 * 1024
MAX_FIELDS = 100
VERSIONS = frozenset({"1.0", "1.1"})
FIELD_LINE_OVERHEAD = 4
"""`: ` and CRLF around a field's name and value."""


@dataclass(frozen=True)
class Refusal:
    """An answer to a request refused before it reaches the app."""

    kind: ProblemType
    detail: str

    def body(self) -> bytes:
        kind = self.kind
        problem = {"type": kind.uri, "title": kind.title, "status": kind.status}
        return json.dumps({**problem, "detail": self.detail}).encode()

    def status_line(self) -> bytes:
        status = self.kind.status
        return f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()


UNREADABLE = Refusal(BAD_REQUEST, "the request is not valid HTTP/1.1")
NO_HOST = Refusal(BAD_REQUEST, "an HTTP/1.1 request must have a Host field")
TWO_HOSTS = Refusal(
    BAD_REQUEST, "a request must have one Host field, not several (nor several joined by commas)"
)
HEAD_TOO_LARGE = Refusal(
    HEADERS_TOO_LARGE, f"the request line and header fields exceed {MAX_HEAD_BYTES} bytes"
)
FIELD_TOO_LARGE = Refusal(HEADERS_TOO_LARGE, f"a header field exceeds {MAX_FIELD_BYTES} bytes")
TOO_MANY_FIELDS = Refusal(HEADERS_TOO_LARGE, f"a request may have at most {MAX_FIELDS} fields")
TARGET_TOO_LONG = Refusal(
    URI_TOO_LONG, f"the request target (path and query) exceeds {MAX_TARGET_BYTES} bytes"
)


UNKNOWN_VERSION = Refusal(
    HTTP_VERSION_NOT_SUPPORTED, "the request's HTTP version is not served: HTTP/1.1 or HTTP/1.0"
)


def unsupported_version(version: str) -> Refusal:
    return Refusal(
        HTTP_VERSION_NOT_SUPPORTED, f"HTTP/{version[:10]} is not served: HTTP/1.1 or HTTP/1.0"
    )


Fields = list[tuple[bytes, bytes]]
"""A head's fields as uvicorn keeps them: names in lower case."""


def judged(version: str, url: bytes, fields: Fields, received: int) -> Refusal | None:
    """The refusal of a complete head, None if it passes; `received` bounds its size from
    above (the bytes it arrived with): a head of at most `MAX_FIELD_BYTES` has neither a field,
    a target nor a line over a limit, and is not measured."""
    if version not in VERSIONS:
        return unsupported_version(version)
    if len(fields) > MAX_FIELDS:
        return TOO_MANY_FIELDS
    if received > MAX_FIELD_BYTES:
        refusal = _too_large(url, fields)
        if refusal is not None:
            return refusal
    hosts = [value for name, value in fields if name == b"host"]
    if len(hosts) > 1 or (hosts and b"," in hosts[0]):
        return TWO_HOSTS
    return NO_HOST if version == "1.1" and not hosts else None


def _too_large(url: bytes, fields: Fields) -> Refusal | None:
    if len(url) > MAX_TARGET_BYTES:
        return TARGET_TOO_LONG
    lengths = [len(name) + len(value) for name, value in fields]
    if max(lengths, default=0) > MAX_FIELD_BYTES:
        return FIELD_TOO_LARGE
    if len(url) + sum(lengths) + FIELD_LINE_OVERHEAD * len(lengths) > MAX_HEAD_BYTES:
        return HEAD_TOO_LARGE
    return None
