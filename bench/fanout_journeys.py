"""The fan-out benches' load: customer journeys of commands, sent open loop."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import loadgen
from bench_auth import authorization, client_tokens
from bench_host import HOST
from fanout_stack import clock

from eventlog.position_tokens import parse_token

# --------------------------------------------------------------------------------------------
# (b) the load: customer journeys, open loop


ORDERS_PER_USER = 2
LINES_PER_ORDER = 2
JOURNEY = ["register"] + ["create", *["line"] * LINES_PER_ORDER, "place"] * ORDERS_PER_USER
"""A placed order is paid by its fulfilment saga (the payment provider's capture marks it paid),
so a client never sends `pay`: it would race the saga (409 once the saga has)."""
COMMANDS_PER_JOURNEY = len(JOURNEY)  # 9
CONTEXT_OF = {"register": "users"} | dict.fromkeys(("create", "line", "place"), "orders")
CURRENCIES = ("EUR", "USD", "GBP")
IDLE_LIMIT = 3.0
"""Seconds a keep-alive connection may idle before it is dropped (uvicorn closes at 5 s)."""


@dataclass
class Journey:
    index: int
    run_id: str
    step: int = 0
    user_id: str | None = None
    order_id: str | None = None
    lines: int = 0

    @property
    def kind(self) -> str:
        return JOURNEY[self.step]

    def request(self, host: str, auth: str) -> bytes:
        """The next command; `auth` is its Authorization header line."""
        kind = self.kind
        if kind == "register":
            return loadgen.json_request(
                "POST",
                "/users",
                host,
                {
                    "name": f"Fan Out {self.index}",
                    "email": f"fan{self.index}-{self.run_id}@bench.example.com",
                },
                auth,
            )
        if kind == "create":
            currency = CURRENCIES[self.index % len(CURRENCIES)]
            order = {"user_id": self.user_id, "currency": currency}
            return loadgen.json_request("POST", "/orders", host, order, auth)
        if kind == "line":
            self.lines += 1
            line = {
                "sku": f"SKU-{self.lines}",
                "quantity": 1 + self.index % 3,
                "unit_price": "9.99",
            }
            path = f"/orders/{self.order_id}/lines"
            return loadgen.json_request("POST", path, host, line, auth)
        return loadgen.request_bytes("POST", f"/orders/{self.order_id}/{kind}", host, extra=auth)

    @property
    def resource(self) -> str:
        """The read API path showing this journey's last command."""
        return f"/orders/{self.order_id}" if self.order_id else f"/users/{self.user_id}"

    def answered(self, body: dict[str, Any]) -> None:
        if self.kind == "register":
            self.user_id = body["id"]
        elif self.kind == "create":
            self.order_id = body["id"]
            self.lines = 0
        self.step += 1

    @property
    def finished(self) -> bool:
        return self.step >= len(JOURNEY)


@dataclass
class Command:
    kind: str
    context: str
    scheduled: float
    answered: float = 0.0
    status: int = 0
    position: int = 0
    error: str | None = None
    resource: str = ""
    """The read API path that shows the command's effect (once answered)."""


class Driver:
    """Open loop: command i is sent at t0 + i/rate on an idle keep-alive connection (a new one
    if none is idle). Every 11th slot starts a journey; the others take the next step of a
    journey whose previous command was answered (a new journey if none is ready). Each journey
    is a client of its own, with one of `clients` tokens."""

    def __init__(self, port: int, rate: float, run_id: str, clients: int = 64) -> None:
        self.port = port
        self.auth = [authorization(token) for token in client_tokens(clients)]
        self.host = f"{HOST}:{port}"
        self.rate = rate
        self.run_id = run_id
        # keep-alive connections, last used at; the server closes them after 5 s idle
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.ready: list[Journey] = []
        self.journeys = 0
        self.commands: list[Command] = []
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def _next_journey(self, slot: int) -> Journey:
        if slot % COMMANDS_PER_JOURNEY != 0 and self.ready:
            return self.ready.pop(0)
        self.journeys += 1
        return Journey(self.journeys, self.run_id)

    async def run(self, seconds: float) -> None:
        t0 = clock()
        slot = 0
        while True:
            due = t0 + slot / self.rate
            if due - t0 >= seconds:
                break
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            journey = self._next_journey(slot)
            task = asyncio.create_task(self._send(journey, due))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            slot += 1
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        for _, writer, _ in self.idle:
            writer.close()

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The most recently used idle connection, if it has not idled too long; else a new one."""
        while self.idle:
            reader, writer, used = self.idle.pop()
            if clock() - used < IDLE_LIMIT:
                return reader, writer
            writer.close()
        connection = await asyncio.open_connection(HOST, self.port)
        self.connections += 1
        return connection

    async def _send(self, journey: Journey, due: float) -> None:
        kind = journey.kind
        command = Command(kind, CONTEXT_OF[kind], due)
        self.commands.append(command)
        request = journey.request(self.host, self.auth[journey.index % len(self.auth)])
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reader, writer = await self._connection()
            writer.write(request)
            response, closing = await loadgen.read_response(reader)
            command.answered = clock()
            command.status = response.status
            if closing:
                writer.close()
            else:
                self.idle.append((reader, writer, command.answered))
        except (OSError, EOFError, asyncio.LimitOverrunError, loadgen.ProtocolError) as error:
            command.answered = clock()
            command.error = type(error).__name__
            return  # the journey is dropped
        finally:
            self.in_flight -= 1
        if 200 <= response.status < 300:
            body = json.loads(response.body)
            command.position = parse_token(body["position"]).value
            journey.answered(body)
            command.resource = journey.resource
            if not journey.finished:
                self.ready.append(journey)
        else:
            command.error = f"{response.status} {response.body[:200]!r}"
