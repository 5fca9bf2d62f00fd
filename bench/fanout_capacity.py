"""The stack's command capacity, measured on the running stack before the lag run: closed-loop
clients send customer journeys as fast as the answers come back, and the capacity is the rate
the stack sustains: commands ÷ the time until the commands were visible in every read model
(so a projector slower than the write API bounds it) and the fulfilments of every order they
placed had ended (each placed order runs a saga of about 22 commits across five stores behind
the answers: counting only the answered commands' visibility took that work as free)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import loadgen
import psycopg
from bench_auth import authorization, client_tokens
from bench_host import HOST
from fanout_journeys import Journey
from fanout_stack import ModelKey, clock, percentiles
from fanout_watch import Observations
from proc_cpu import cpu_snapshot

from eventlog.position_tokens import parse_token

DRAIN_TIMEOUT = 60.0
"""Seconds the read models get to catch up with the closed loop's last command."""
SAGAS_TIMEOUT = 300.0
"""Seconds the fulfilments of the placed orders get to end."""
ENDED_SAGAS = "SELECT count(*) FROM fulfilments WHERE status NOT IN ('running', 'compensating')"


@dataclass
class ClosedLoop:
    """`clients` connections, each sending its next command when the previous one is answered."""

    port: int
    clients: int
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    answered: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    last_position: Counter[str] = field(default_factory=Counter)
    journeys: int = 0
    placed: int = 0

    async def run(self, seconds: float) -> tuple[float, float]:
        """Drive for `seconds`; returns (start, time the last answer arrived)."""
        auths = [authorization(token) for token in client_tokens(self.clients)]
        start = clock()
        await asyncio.gather(*(self._client(auth, start + seconds) for auth in auths))
        return start, clock()

    def _journey(self) -> Journey:
        self.journeys += 1
        return Journey(self.journeys, self.run_id)

    async def _client(self, auth: str, until: float) -> None:
        host = f"{HOST}:{self.port}"
        journey = self._journey()
        while clock() < until:
            reader, writer = await asyncio.open_connection(HOST, self.port)
            try:
                closing = False
                while clock() < until and not closing:
                    if journey.finished:
                        journey = self._journey()
                    sent = clock()
                    writer.write(journey.request(host, auth))
                    response, closing = await loadgen.read_response(reader)
                    if not self._answered(journey, response, clock() - sent):
                        journey = self._journey()
            except (OSError, EOFError, asyncio.LimitOverrunError, loadgen.ProtocolError) as error:
                self.errors[type(error).__name__] += 1
                journey = self._journey()
            finally:
                writer.close()

    def _answered(self, journey: Journey, response: loadgen.Response, latency: float) -> bool:
        """Record one answer; False if the journey cannot go on."""
        if not 200 <= response.status < 300:
            self.errors[str(response.status)] += 1
            return False
        body = json.loads(response.body)
        token = parse_token(body["position"])
        context = token.context
        self.last_position[context] = max(self.last_position[context], token.value)
        self.answered += 1
        self.placed += journey.kind == "place"
        self.latencies.append(latency)
        journey.answered(body)
        return True


async def sagas_ended(read_url: str, placed: int) -> float | None:
    """When the fulfilments of `placed` orders had all ended (None past the timeout)."""
    deadline = clock() + SAGAS_TIMEOUT
    async with await psycopg.AsyncConnection.connect(read_url, autocommit=True) as conn:
        while clock() < deadline:
            row = await (await conn.execute(ENDED_SAGAS)).fetchone()
            if row is not None and row[0] >= placed:
                return clock()
            await asyncio.sleep(0.05)
    return None


async def measure_capacity(
    port: int,
    obs: Observations,
    keys: list[ModelKey],
    read_url: str,
    *,
    clients: int,
    seconds: float,
) -> dict[str, Any]:
    """Closed loop for `seconds`, then wait until every read model shows the last command and
    the placed orders' fulfilments have ended."""
    loop = ClosedLoop(port, clients)
    start, last_answer = await loop.run(seconds)
    wanted = [k for k in keys if k.context in loop.last_position]
    deadline = clock() + DRAIN_TIMEOUT
    while clock() < deadline and any(obs.last(k) < loop.last_position[k.context] for k in wanted):
        await asyncio.sleep(0.02)
    reached = [obs.reached_at(k, loop.last_position[k.context]) for k in wanted]
    drained = bool(reached) and all(at is not None for at in reached)
    visible_at = max((at for at in reached if at is not None), default=None)
    write_rate = loop.answered / (last_answer - start)
    visible_rate = (
        loop.answered / (max(visible_at, last_answer) - start) if drained and visible_at else None
    )
    before = cpu_snapshot()
    ended_at = await sagas_ended(read_url, loop.placed)
    after = cpu_snapshot()
    busy = (after.busy - before.busy) / max(1, after.total - before.total)
    sustained_rate = (
        loop.answered / (max(ended_at, visible_at, last_answer) - start)
        if ended_at is not None and visible_at is not None
        else None
    )
    return {
        "clients": clients,
        "seconds": seconds,
        "commands_ok": loop.answered,
        "errors": dict(loop.errors),
        "write_rate": round(write_rate, 1),
        "visible_rate": None if visible_rate is None else round(visible_rate, 1),
        "capacity": round(sustained_rate if sustained_rate is not None else 0.0, 1),
        "drained": drained,
        "drain_s": None if visible_at is None else round(visible_at - last_answer, 3),
        "orders_placed": loop.placed,
        "sagas_ended_s": None if ended_at is None else round(ended_at - last_answer, 3),
        "machine_busy_until_sagas_ended": round(busy, 3),
        "http_latency": percentiles(loop.latencies),
    }
