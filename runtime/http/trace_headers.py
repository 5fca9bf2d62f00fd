"""The trace headers, `X-Correlation-Id` and `X-Causation-Id`, checked on every request.

A command reads them into its events (`write_api.command_http`); any other request only passes
them to the logs. Either way a malformed one (not 1 to 100 visible ASCII characters, or sent in
two fields) is a 400 problem, on every route of every service, as the README's error table says:
a client learns of its bug on its first request, not on its first command. A request without
them passes untouched; a well-formed `X-Correlation-Id` tags the request's log lines.
"""

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.http.header_fields import MalformedField, one_field, trace_id
from runtime.logs import set_correlation_id

Refusal = Callable[[Request, str], Response]

TRACE_FIELDS = {b"x-correlation-id": "X-Correlation-Id", b"x-causation-id": "X-Causation-Id"}


class TraceHeaders:
    """ASGI middleware: `refuse(request, why)` answers a request with a malformed trace header
    (`runtime.http.problems` installs it with its 400 problem), before any route."""

    def __init__(self, app: ASGIApp, refuse: Refusal) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            field = TRACE_FIELDS.get(name.lower())
            if field is not None:
                found.setdefault(field, []).append(value.decode("latin-1"))
        try:
            values = {name: trace_id(one_field(lines, name), name) for name, lines in found.items()}
        except MalformedField as error:
            await self.refuse(Request(scope), str(error))(scope, receive, send)
            return
        correlation_id = values.get("X-Correlation-Id")
        if correlation_id is not None:
            set_correlation_id(correlation_id)
        await self.app(scope, receive, send)
