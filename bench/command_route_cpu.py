"""CPU per command request in the write API's own stack, lean route against FastAPI's handler.

Drives the real write API app (`write_api.app.create_app`: every middleware, token
verification, the rate-limit hit, admission, metrics, the thread hop) in this process, with the
users service's command stubbed to answer at once, so that what is measured is the HTTP path of
a command, not its store. Requests go straight through the ASGI interface (no sockets, no
uvicorn), `--concurrency` at a time, and each mode's CPU time (`time.process_time`: every
thread of the process) is divided by its requests. Three modes, in alternating rounds within
one run:

- `lean`: the routes as served (`write_api.command_http.CommandRoute`, a `LeanRoute`);
- `fastapi`: the same app built with FastAPI's handler in every route (`LeanRoute` built as
  a plain `APIRoute`);
- `floor`: a bare ASGI app answering the same JSON body (the raw limit of an ASGI answer here).

Rate limits are counted in this process's memory unless `--redis URL` is given (the Redis
round trip is then in every request, as in production).

    .venv/bin/python bench/command_route_cpu.py                       # register and rename
    .venv/bin/python bench/command_route_cpu.py --redis redis://127.0.0.1:6379/9 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.routing import APIRoute, iter_route_contexts

from contexts.settings import Settings
from domain.service import CommandResult
from domain.users.service import UsersService
from runtime.auth.jwks import StaticKeys
from runtime.http.lean_route import LeanRoute
from tests.support.auth import IDENTITY
from write_api.app import create_app

MODES = ("lean", "fastapi", "floor")
Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
USER_ID = uuid.UUID(int=7)


def request_of(command: str, seq: int, token: str) -> tuple[dict[str, Any], bytes]:
    if command == "register":
        method, path = "POST", "/users"
        body = b'{"name":"Bench User","email":"u%d@bench.example.com"}' % seq
    else:
        method, path = "PUT", f"/users/{USER_ID}/name"
        body = b'{"name":"Bench User %d"}' % seq
    headers = [
        (b"host", b"bench"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    return scope, body


async def send_one(app: Asgi, scope: dict[str, Any], body: bytes, state: dict[str, Any]) -> int:
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app({**scope, "state": dict(state)}, receive, send)
    return status


async def in_flight(
    limit: int, app: Asgi, requests: list[tuple[dict[str, Any], bytes]], state: dict[str, Any]
) -> list[int]:
    """Send `requests` to `app` with at most `limit` in flight, as a server's connections do."""
    pending = iter(requests)
    statuses: list[int] = []

    async def connection() -> None:
        for scope, body in pending:
            statuses.append(await send_one(app, scope, body, state))

    await asyncio.gather(*(connection() for _ in range(limit)))
    return statuses


def floor_app() -> Asgi:
    answer = json.dumps({"id": str(USER_ID), "version": 2, "position": "users:1"}).encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"application/json"), (b"etag", b'"2"')]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


def stub_commands(service: UsersService) -> None:
    """The commands answer at once: the store is not what this bench measures."""

    def register(ctx: Any, name: str, email: str) -> CommandResult:
        return CommandResult(uuid.uuid4(), 1, 1)

    def rename(ctx: Any, user_id: uuid.UUID, name: str) -> CommandResult:
        return CommandResult(user_id, 2, 1)

    service.register = register  # type: ignore[method-assign]
    service.rename = rename  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def running_app(args: argparse.Namespace, lean: bool) -> AsyncIterator[tuple[Asgi, Any]]:
    """A write API app, started (its lifespan), its users commands stubbed; with `lean=False`
    its routes' handlers are FastAPI's (built while `LeanRoute` is patched to be an APIRoute)."""
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="strata-route-cpu-")),
        redis_url=args.redis,
        rate_limit_default="100000000/minute",
        rate_limit_roles={},
    )
    with contextlib.ExitStack() as patches:
        if not lean:
            patches.enter_context(
                mock.patch.object(LeanRoute, "get_route_handler", APIRoute.get_route_handler)
            )
        app = create_app(settings, keys=StaticKeys({"test-key-1": IDENTITY.key}))
        list(iter_route_contexts(app.routes))  # builds every route's handler now
    async with app.router.lifespan_context(app) as state:
        stub_commands(app.state.services.application(UsersService))
        yield app, dict(state or {})


async def measure(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    token = IDENTITY.token("bench-client", seconds=3600)
    results: dict[str, dict[str, list[float]]] = {}
    async with running_app(args, lean=True) as lean, running_app(args, lean=False) as fastapi:
        apps = {"lean": lean, "fastapi": fastapi, "floor": (floor_app(), {})}
        apps = {mode: apps[mode] for mode in args.modes}
        for command in args.commands:
            per_mode: dict[str, list[float]] = {mode: [] for mode in apps}
            seq = 0
            for round_ in range(args.rounds + 1):  # the first round warms up
                for mode, (app, state) in apps.items():
                    requests = [request_of(command, seq + i, token) for i in range(args.requests)]
                    seq += args.requests
                    started = time.process_time()
                    statuses = await in_flight(args.concurrency, app, requests, state)
                    if set(statuses) - {200, 201}:
                        raise SystemExit(f"{mode} {command}: statuses {set(statuses)}")
                    if round_:
                        per_request = (time.process_time() - started) / args.requests
                        per_mode[mode].append(per_request * 1e6)
            results[command] = per_mode
    return results


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "redis": bool(args.redis),
        "commands": {},
    }
    for command, modes in results.items():
        medians = {mode: round(statistics.median(values), 1) for mode, values in modes.items()}
        row: dict[str, Any] = {
            "cpu_us_per_request": medians,
            "spread_us": {mode: [round(min(v), 1), round(max(v), 1)] for mode, v in modes.items()},
        }
        for mode, other in (("lean", "fastapi"), ("lean", "floor"), ("fastapi", "floor")):
            if mode in medians and other in medians:
                row[f"{mode}_over_{other}"] = round(medians[mode] / medians[other], 3)
        out["commands"][command] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", nargs="+", default=["register", "rename"])
    parser.add_argument("--requests", type=int, default=2000, help="requests per mode and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--redis", default=None, help="count rate limits in this Redis")
    parser.add_argument(
        "--modes", nargs="+", default=list(MODES), choices=MODES, help="(for profiling one)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("STRATA_LOG_LEVEL", "warning")
    out = report(asyncio.run(measure(args)), args)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    where = "Redis" if args.redis else "memory"
    rounds = f"median of {args.rounds} rounds x {args.requests}, {args.concurrency} in flight"
    print(f"CPU per request, {rounds}; rate limits in {where}")
    for command, row in out["commands"].items():
        figures = [f"{mode} {cpu:7.1f} us" for mode, cpu in row["cpu_us_per_request"].items()]
        if "lean_over_fastapi" in row:
            figures.append(f"lean/fastapi {row['lean_over_fastapi']:.3f}")
        print(f"  {command:9s} " + "   ".join(figures))


if __name__ == "__main__":
    main()
