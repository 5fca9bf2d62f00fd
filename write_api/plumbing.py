"""What every command endpoint does around its handler: headers in, thread hop, response out."""

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from domain.service import CommandContext, CommandResult
from eventlog.http import Runner
from eventlog.logs import set_correlation_id
from write_api.schemas import Command

T = TypeVar("T")

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
TRACE_ID = re.compile(r"^[\x21-\x7e]{1,100}$")
ETAG = re.compile(r'^(?:W/)?"?(\d{1,18})"?$')


async def run_blocking(request: Request, call: Callable[[], T]) -> T:
    runner: Runner = request.app.state.runner
    return await runner.run(call)


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    match = ETAG.match(if_match.strip())
    if match is None:
        raise HTTPException(400, f'If-Match must be an ETag such as "3", got {if_match!r}')
    return int(match.group(1))


def fingerprint(request: Request, body: Command | None) -> str:
    """Identifies the request an Idempotency-Key was first used with."""
    payload = body.model_dump(mode="json") if body is not None else None
    text = json.dumps([request.method, request.url.path, payload], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _trace_id(value: str | None, header: str) -> str | None:
    if value is not None and not TRACE_ID.match(value):
        raise HTTPException(400, f"{header} must be 1 to 100 visible ASCII characters")
    return value


class CommandHeaders:
    """The Idempotency-Key, If-Match, X-Correlation-Id and X-Causation-Id headers."""

    def __init__(
        self,
        idempotency_key: str | None,
        if_match: str | None,
        correlation_id: str | None,
        causation_id: str | None,
    ) -> None:
        if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
            raise HTTPException(400, "Idempotency-Key must be 1 to 200 visible ASCII characters")
        self.idempotency_key = idempotency_key
        self.expected_version = expected_version(if_match)
        self.correlation_id = _trace_id(correlation_id, "X-Correlation-Id") or str(uuid.uuid4())
        self.causation_id = _trace_id(causation_id, "X-Causation-Id")

    def context(self, request: Request, body: Command | None = None) -> CommandContext:
        key = self.idempotency_key
        return CommandContext(
            idempotency_key=key,
            fingerprint=fingerprint(request, body) if key else "",
            expected_version=self.expected_version,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
        )


async def command_headers(
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
    correlation_id: Annotated[str | None, Header(alias="X-Correlation-Id")] = None,
    causation_id: Annotated[str | None, Header(alias="X-Causation-Id")] = None,
) -> CommandHeaders:
    headers = CommandHeaders(idempotency_key, if_match, correlation_id, causation_id)
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
        "position": f"{context}:{result.position}",
    }
    return JSONResponse(body, status_code=201 if created else 200, headers=response_headers)
