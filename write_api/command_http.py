"""What every command endpoint does around its handler: headers in, thread hop, response out."""

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from domain.service import ANY_EXISTING_VERSION, CommandContext, CommandResult, ExpectedVersions
from eventlog.envelope import partition_of
from eventlog.position_tokens import format_token
from runtime.http.deadlines import Runner
from runtime.logs import set_correlation_id
from write_api.schemas import Command

T = TypeVar("T")

IF_MATCH_HELP = (
    'Refuse the command (412) unless the aggregate is at one of these versions: `"3"`, or a list'
    ' `"3", "4"`; `*` means any existing version. Weak tags (`W/"3"`) never match. A malformed'
    " value is a 400."
)

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
TRACE_ID = re.compile(r"^[\x21-\x7e]{1,100}$")

# If-Match = "*" / #entity-tag (RFC 9110 §13.1.1, lists per §5.6.1): entity-tag = [ "W/" ]
# DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text; empty list elements are allowed.
# Header values arrive decoded as Latin-1, so obs-text is U+0080..U+00FF. The quantifiers
# around the separators are possessive: a long run of blanks cannot make matching backtrack.
_ENTITY_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
_IF_MATCH_LIST = re.compile(
    rf"[ \t]*+(?:{_ENTITY_TAG})?(?:[ \t]*+,[ \t]*+(?:{_ENTITY_TAG})?)*[ \t]*+"
)
_TAGS = re.compile(r'(W/)?"([^"]*)"')
# The entity tags this API issues: a version, in decimal without leading zeros.
_VERSION = re.compile(r"0|[1-9][0-9]{0,17}")


async def run_blocking(request: Request, call: Callable[[], T]) -> T:
    runner: Runner = request.app.state.runner
    return await runner.run(call)


def etag(version: int) -> str:
    return f'"{version}"'


class MalformedIfMatch(ValueError):
    """An If-Match value outside RFC 9110's grammar, or naming a tag this API never issues."""


def parse_if_match(value: str) -> ExpectedVersions:
    """The versions an If-Match value accepts, under strong comparison.

    `*` accepts any existing version. A weak tag (`W/"3"`) is well-formed but never matches
    strongly, so it adds no version. A list must name at least one tag; every tag must be one
    this API issues (`"3"`, not `"03"` or `"x"`), else the value is malformed.
    """
    if value.strip(" \t") == "*":
        return ANY_EXISTING_VERSION
    if _IF_MATCH_LIST.fullmatch(value) is None:
        raise MalformedIfMatch('expected "*" or a comma-separated list of entity tags')
    tags = _TAGS.findall(value)
    if not tags:
        raise MalformedIfMatch("expected at least one entity tag")
    strong: set[int] = set()
    for weak, opaque in tags:
        if _VERSION.fullmatch(opaque) is None:
            raise MalformedIfMatch(f'"{opaque}" is not a version, as in the ETag "3"')
        if not weak:
            strong.add(int(opaque))
    return ExpectedVersions(frozenset(strong))


def expected_versions(lines: list[str]) -> ExpectedVersions:
    """The request's If-Match, its field lines combined as one list (RFC 9110 §5.3)."""
    value = ", ".join(lines)
    try:
        return parse_if_match(value)
    except MalformedIfMatch as error:
        raise HTTPException(400, f"If-Match {value!r} is malformed: {error}") from None


def fingerprint(request: Request, body: Command | None) -> str:
    """Identifies the request an Idempotency-Key was first used with."""
    payload = body.model_dump(mode="json") if body is not None else None
    text = json.dumps([request.method, request.url.path, payload], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _trace_id(value: str | None, header: str) -> str | None:
    if value is not None and not TRACE_ID.fullmatch(value):
        raise HTTPException(400, f"{header} must be 1 to 100 visible ASCII characters")
    return value


class CommandHeaders:
    """The Idempotency-Key, If-Match, X-Correlation-Id and X-Causation-Id headers."""

    def __init__(
        self,
        idempotency_key: str | None,
        expected: ExpectedVersions | None,
        correlation_id: str | None,
        causation_id: str | None,
    ) -> None:
        if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise HTTPException(400, "Idempotency-Key must be 1 to 200 visible ASCII characters")
        self.idempotency_key = idempotency_key
        self.expected_versions = expected
        self.correlation_id = _trace_id(correlation_id, "X-Correlation-Id") or str(uuid.uuid4())
        self.causation_id = _trace_id(causation_id, "X-Causation-Id")

    def context(self, request: Request, body: Command | None = None) -> CommandContext:
        key = self.idempotency_key
        return CommandContext(
            idempotency_key=key,
            fingerprint=fingerprint(request, body) if key else "",
            expected_versions=self.expected_versions,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
        )


async def command_headers(
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    if_match: Annotated[str | None, Header(alias="If-Match", description=IF_MATCH_HELP)] = None,
    correlation_id: Annotated[str | None, Header(alias="X-Correlation-Id")] = None,
    causation_id: Annotated[str | None, Header(alias="X-Causation-Id")] = None,
) -> CommandHeaders:
    # Header() gives the first field line only; a list may be split over several.
    expected = None if if_match is None else expected_versions(request.headers.getlist("if-match"))
    headers = CommandHeaders(idempotency_key, expected, correlation_id, causation_id)
    set_correlation_id(headers.correlation_id)
    return headers


# Dependencies are async on purpose: FastAPI runs sync ones on the thread pool.
Headers = Annotated[CommandHeaders, Depends(command_headers)]


def accepted(
    context: str, result: CommandResult, headers: CommandHeaders, *, created: bool = False
) -> JSONResponse:
    """The answer to a command, built directly: this is the hot path, and the body is simple."""
    response_headers = {
        "ETag": etag(result.version),
        "X-Correlation-Id": headers.correlation_id,
    }
    if created:
        response_headers["Location"] = f"/{context}/{result.id}"
    if result.replayed:
        response_headers["Idempotent-Replayed"] = "true"
    body = {
        "id": str(result.id),
        "version": result.version,
        "position": format_token(context, result.position, partition_of(result.id)),
    }
    return JSONResponse(body, status_code=201 if created else 200, headers=response_headers)
