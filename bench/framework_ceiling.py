"""The HTTP framework's own ceiling for a command request, with no event store behind it.

The same FastAPI stack, request model, header dependency and response builder as `POST /users`
of the write API, answering without touching a store. `write_throughput.py --command noop`
drives it, so the gap between this and the real command is what the store path costs.
"""

import uuid

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
