"""Strong ETags of the mobile answers, and 304 for a client that holds the current one.

The tag is a hash of the exact body, so equal answers have equal tags whichever replica made
them. An answer with an unavailable section gets no tag and `Cache-Control: no-store`: a
client must not keep a degraded answer as the current one.
"""

import hashlib

from fastapi import Response
from pydantic import BaseModel

from bff.sections import Unavailable

CACHED = "private, no-cache"
"""Per user, and to be revalidated (If-None-Match) before each use."""
ETAG_DOC = {"description": "A strong tag of this exact body: send it in `If-None-Match`."}
RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"headers": {"ETag": {**ETAG_DOC, "schema": {"type": "string"}}}},
    304: {"description": "Not modified: the `If-None-Match` tag is the current body's."},
}


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 13.1.2: `*`, or any listed tag by weak comparison (a `W/` prefix ignored)."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def tagged(answer: BaseModel, if_none_match: str | None) -> Response:
    """`answer` as JSON with its ETag, or a 304 when `if_none_match` holds that tag."""
    body = answer.model_dump_json().encode()
    if any(isinstance(value, Unavailable) for value in vars(answer).values()):
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})
    etag = strong_etag(body)
    headers = {"ETag": etag, "Cache-Control": CACHED}
    if if_none_match is not None and _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
