"""A service that waits for its stores (`runtime.opening`) answers at once meanwhile: every
route that needs them with a 503 problem and `Retry-After`, doing nothing; `/healthz`,
`/readyz`, `/metrics` and the API's documents as always."""

from typing import Protocol

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.http.problems import unavailable

OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class Waiting(Protocol):
    @property
    def waiting_for(self) -> str | None:
        """What the service waits for, in words; None once it serves."""
        ...


class WaitingGate:
    """Answers 503 to any request outside `open_paths` while `waiting.waiting_for` is set."""

    def __init__(self, app: ASGIApp, waiting: Waiting, open_paths: frozenset[str]) -> None:
        self.app = app
        self.waiting = waiting
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = self.waiting.waiting_for
        if scope["type"] != "http" or reason is None or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        await unavailable(Request(scope), reason)(scope, receive, send)


def install_waiting_gate(app: FastAPI, waiting: Waiting) -> None:
    """Gate `app`'s routes by `waiting`; install it before the other middleware, so that the
    requests it refuses have passed the same checks (authentication, bodies, rate limits)."""
    documents = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    open_paths = OPS_PATHS | {path for path in documents if path}
    app.add_middleware(WaitingGate, waiting=waiting, open_paths=open_paths)
