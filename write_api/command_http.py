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
from runtime.auth.http import principal_of
from runtime.http import header_fields
from runtime.http.deadlines import Runner
from runtime.http.header_fields import MalformedField
from runtime.http.lean_route import LeanRoute, served_lean_by
from runtime.http.query_string import QueryCheckedRoute
from runtime.logs import set_correlation_id
from runtime.rate_limits import RateLimitedRoute
from write_api.schemas import Command

T = TypeVar("T")

SINGLE_FIELDS = ("Idempotency-Key", "X-Correlation-Id", "X-Causation-Id")
"""The command headers holding one value, in the order they are read."""
IF_MATCH_HELP = (
    'Refuse the command (412) unless the aggregate is at one of these versions: `"3"`, or a list'
    ' `"3", "4"`; `*` means any existing version. Weak tags (`W/"3"`) never match. A malformed'
    " value is a 400."
)


async def run_blocking(request: Request, call: Callable[[], T]) -> T:
    runner: Runner = request.app.state.runner
    return await runner.run(call)


def etag(version: int) -> str:
    return f'"{version}"'


# The entity tags this API issues: a version, in decimal without leading zeros.
_VERSION = re.compile(r"0|[1-9][0-9]{0,17}")


class MalformedIfMatch(MalformedField):
    """An If-Match value outside RFC 9110's grammar, or naming a tag this API never issues."""


def parse_if_match(value: str) -> ExpectedVersions:
    """The versions an If-Match value accepts, under strong comparison.

    `*` accepts any existing version. A weak tag (`W/"3"`) is well-formed but never matches
    strongly, so it adds no version. A list must name at least one tag; every tag must be one
    this API issues (`"3"`, not `"03"` or `"x"`), else the value is malformed.
    """
    try:
        tags = header_fields.if_match_tags(value)
    except MalformedField as error:
        raise MalformedIfMatch(str(error)) from None
    if tags is header_fields.ANY_TAG:
        return ANY_EXISTING_VERSION
    strong: set[int] = set()
    for tag in tags:
        if _VERSION.fullmatch(tag.opaque) is None:
            raise MalformedIfMatch(f'"{tag.opaque}" is not a version, as in the ETag "3"')
        if not tag.weak:
            strong.add(int(tag.opaque))
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


def key_owner(request: Request) -> str:
    """Whose Idempotency-Key a command's is: its caller, the subject of the request's verified
    token. A key is the caller's own: another caller's same key is another key."""
    principal = principal_of(request)
    if principal is None:  # an endpoint's bug, never the client's: it takes `caller: Caller`
        raise RuntimeError("a command with an Idempotency-Key ran before its caller was verified")
    return principal.subject


class CommandHeaders:
    """The Idempotency-Key, If-Match, X-Correlation-Id and X-Causation-Id headers."""

    def __init__(
        self,
        idempotency_key: str | None,
        expected: ExpectedVersions | None,
        correlation_id: str | None,
        causation_id: str | None,
    ) -> None:
        try:
            self.idempotency_key = header_fields.idempotency_key(idempotency_key)
            correlation_id = header_fields.trace_id(correlation_id, "X-Correlation-Id")
            self.causation_id = header_fields.trace_id(causation_id, "X-Causation-Id")
        except MalformedField as error:
            raise HTTPException(400, str(error)) from None
        self.expected_versions = expected
        self.correlation_id = correlation_id or str(uuid.uuid4())

    def context(self, request: Request, body: Command | None = None) -> CommandContext:
        key = self.idempotency_key
        return CommandContext(
            idempotency_key=key,
            idempotency_scope=key_owner(request) if key else None,
            fingerprint=fingerprint(request, body) if key else "",
            expected_versions=self.expected_versions,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
        )


def read_command_headers(request: Request) -> CommandHeaders:
    """The request's command headers, checked (a malformed one is a 400); the correlation id
    becomes the one of the logs."""
    fields = request.headers
    # A list may be split over several field lines: If-Match takes them all. The others hold
    # one value each: sent on several lines, they are malformed.
    if_match = fields.getlist("if-match")
    expected = expected_versions(if_match) if if_match else None
    try:
        idempotency_key, correlation_id, causation_id = (
            header_fields.one_field(fields.getlist(name), name) for name in SINGLE_FIELDS
        )
    except MalformedField as error:
        raise HTTPException(400, str(error)) from None
    headers = CommandHeaders(idempotency_key, expected, correlation_id, causation_id)
    set_correlation_id(headers.correlation_id)
    return headers


async def _read_command_headers(request: Request) -> CommandHeaders:
    return read_command_headers(request)


@served_lean_by(_read_command_headers)
async def command_headers(
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    if_match: Annotated[str | None, Header(alias="If-Match", description=IF_MATCH_HELP)] = None,
    correlation_id: Annotated[str | None, Header(alias="X-Correlation-Id")] = None,
    causation_id: Annotated[str | None, Header(alias="X-Causation-Id")] = None,
) -> CommandHeaders:
    """The parameters declare the headers in the OpenAPI document; their values are read from
    the request as the lean route reads them, so both answer alike."""
    return read_command_headers(request)


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


class CommandRoute(QueryCheckedRoute, RateLimitedRoute, LeanRoute):
    """The route class of command endpoints: its query parameters checked as the read API's
    (a parameter given twice is a 422 naming it), rate limited, and answered by a `LeanRoute`."""
