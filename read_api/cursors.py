"""Opaque, tamper-evident page cursors for keyset pagination.

A cursor is `base64url(JSON of the last row's sort key) . base64url(HMAC-SHA256[:12])`. The MAC
also covers the query the page belongs to (endpoint and filters), so a cursor is refused when it
was edited, forged without the key, or used with other filters. Every refusal is a 422 naming
the `cursor` parameter.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
from typing import Any

from read_api.problems import InvalidParameter

MAC_BYTES = 12
MAX_CURSOR_LENGTH = 1000
JSONScalar = str | int
SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
"""Two unpadded base64url parts; the decoder would skip other characters, so they are refused."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def invalid(message: str) -> InvalidParameter:
    return InvalidParameter("cursor", message)


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, scope: str, payload: bytes) -> bytes:
        message = scope.encode() + b"\x00" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:MAC_BYTES]

    def encode(self, scope: str, key: list[JSONScalar]) -> str:
        payload = json.dumps(key, separators=(",", ":")).encode()
        return f"{_b64encode(payload)}.{_b64encode(self._mac(scope, payload))}"

    def decode(self, scope: str, cursor: str, arity: int) -> list[Any]:
        """The sort key inside `cursor`, a list of `arity` strings or integers."""
        if len(cursor) > MAX_CURSOR_LENGTH or SHAPE.fullmatch(cursor) is None:
            raise invalid("is not a cursor returned by this endpoint")
        body, mac = cursor.split(".")
        try:
            payload, given = _b64decode(body), _b64decode(mac)
        except (binascii.Error, ValueError):
            raise invalid("is not a cursor returned by this endpoint") from None
        if not hmac.compare_digest(given, self._mac(scope, payload)):
            raise invalid("was altered, or belongs to a query with other filters")
        try:
            key = json.loads(payload)
        except ValueError:
            raise invalid("is not a cursor returned by this endpoint") from None
        if (
            not isinstance(key, list)
            or len(key) != arity
            or not all(isinstance(part, str | int) and not isinstance(part, bool) for part in key)
        ):
            raise invalid("is not a cursor returned by this endpoint")
        return key
