"""The HTTP framework's own ceiling for a command request, with no event store behind it.

The same FastAPI stack, request model, header dependency and response builder as `POST /users`
of the write API, answering without touching a store. `write_throughput.py --command noop`
drives it, so the gap between this and the real command is what the store path costs.
`--command floor` drives `create_floor`: the same uvicorn answering the same request from a bare
ASGI app, the floor of an answer from Python: the gap between it and `noop` is what the
framework costs.
"""

import json
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from domain.service import CommandResult
from write_api.command_http import Headers, accepted
from write_api.schemas import RegisterUser


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/users", status_code=201)
    async def register(body: RegisterUser, headers: Headers) -> JSONResponse:
        result = CommandResult(uuid.uuid4(), 1, 1)
        return accepted("users", result, headers, created=True)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


Message = MutableMapping[str, Any]
AsgiApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def create_floor() -> AsgiApp:
    """Reads the whole body and answers what `POST /users` answers (201, or 200 for a GET),
    with no routing, validation or middleware."""

    async def app(
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        more_body = True
        while more_body:
            more_body = (await receive()).get("more_body", False)
        position = {"id": str(uuid.uuid4()), "version": 1, "position": "users:1"}
        body = json.dumps(position).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        status = 201 if scope["method"] == "POST" else 200
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
