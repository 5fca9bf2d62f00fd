"""(b) of bench/write_throughput.py: the write API on fresh stores, driven closed-loop by
keep-alive HTTP/1.1 connections, one command (one event) per request."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen
import psycopg
from bench_auth import authorization, client_tokens, setup_token
from bench_host import HOST, log, recreate_database
from fanout_stack import Service
from proc_cpu import Window, connections_per_process
from write_profile import Profiler
from write_server import (
    SERVER_LOG_LINES,
    STORE_DBS,
    STORELESS,
    USERS_DB,
    start_server,
    stop_server,
    wait_ready,
)


def register_factory(host_header: str, run_id: str, tokens: list[str]) -> loadgen.RequestFactory:
    prefixes = [
        (
            f"POST /users HTTP/1.1\r\nHost: {host_header}\r\n{authorization(token)}"
            "Content-Type: application/json\r\n"
        ).encode()
        for token in tokens
    ]

    def make(client: int, seq: int) -> bytes:
        body = b'{"name":"Bench User","email":"u%d-%d-%s@bench.example.com"}' % (
            client,
            seq,
            run_id.encode(),
        )
        prefix = prefixes[client % len(prefixes)]
        return prefix + b"Content-Length: %d\r\n\r\n" % len(body) + body

    return make


def rename_factory(
    host_header: str, user_ids: list[str], tokens: list[str]
) -> loadgen.RequestFactory:
    prefixes = [
        (
            f"PUT /users/{user_id}/name HTTP/1.1\r\nHost: {host_header}\r\n"
            f"{authorization(token)}Content-Type: application/json\r\n"
        ).encode()
        for user_id, token in zip(user_ids, tokens, strict=True)
    ]

    def make(client: int, seq: int) -> bytes:
        body = b'{"name":"Bench User %d"}' % seq  # a new name each time: one event each
        return prefixes[client % len(prefixes)] + b"Content-Length: %d\r\n\r\n" % len(body) + body

    return make


def healthz_factory(host_header: str) -> loadgen.RequestFactory:
    """The framework ceiling: the same server answering GET /healthz, which touches no store."""
    request = loadgen.request_bytes("GET", "/healthz", host_header)

    def make(client: int, seq: int) -> bytes:
        return request

    return make


def preregister(port: int, count: int, run_id: str) -> list[str]:
    host_header = f"{HOST}:{port}"
    operator = authorization(setup_token())

    async def go() -> list[str]:
        ids = []
        for i in range(count):
            request = loadgen.json_request(
                "POST",
                "/users",
                host_header,
                {"name": f"Renamed {i}", "email": f"r{i}-{run_id}@bench.example.com"},
                extra=operator,
            )
            response = await loadgen.fetch(HOST, port, request)
            if response.status != 201:
                raise RuntimeError(f"pre-registration failed: {response.status} {response.body!r}")
            ids.append(json.loads(response.body)["id"])
        return ids

    return loadgen.run(go)


def commit_batches(base: str) -> dict[str, Any]:
    """Events and the transactions that wrote them in the users store, over the whole run."""
    with psycopg.connect(f"{base}/{USERS_DB}", autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM users_events"
        ).fetchone()
    events, transactions = row if row else (0, 0)
    return {
        "events": events,
        "transactions": transactions,
        "events_per_transaction": round(events / transactions, 2) if transactions else None,
    }


@dataclass
class ApiRun:
    load: loadgen.LoadResult
    server: Service
    overload_requests: loadgen.RequestFactory
    """The requests of the open-loop part (c)."""
    connections_per_process: dict[str, int]


def request_factories(
    command: str, port: int, clients: int
) -> tuple[loadgen.RequestFactory, loadgen.RequestFactory]:
    """The requests of the closed loop (b) and of the open loop (c) for `command`."""
    run_id = uuid.uuid4().hex[:8]
    host_header = f"{HOST}:{port}"
    tokens = client_tokens(clients)
    if command == "rename":
        factory = rename_factory(host_header, preregister(port, clients, run_id), tokens)
        return factory, factory
    if command == "healthz":
        factory = healthz_factory(host_header)
        return factory, factory
    # register, noop and floor: the same request (a storeless app answers the last two); the open
    # loop registers other emails than the closed loop's: request n is (client n, sequence n)
    return (
        register_factory(host_header, run_id, tokens),
        register_factory(host_header, f"o{run_id}", tokens),
    )


def api_end_to_end(
    base: str,
    *,
    clients: int,
    seconds: float,
    warmup: float,
    workers: int,
    command: str,
    profiler: Profiler | None,
    log_dir: Path,
    window: Window,
    jwks_url: str,
) -> ApiRun:
    for database in STORE_DBS.values():
        recreate_database(base, database)
    storeless = command if command in STORELESS else None
    server = start_server(base, workers, log_dir, jwks_url, storeless=storeless)
    try:
        wait_ready(server)
        factory, overload_requests = request_factories(command, server.port, clients)
        spread: dict[str, int] = {}
        result = loadgen.run_load(
            HOST,
            server.port,
            factory,
            clients=clients,
            seconds=seconds,
            warmup=warmup,
            on_window=window_edges(server, window, spread, profiler),
        )
        if profiler is not None:
            profiler.wait()
    except BaseException:
        log("--- write API log (tail) ---\n" + server.log_tail(SERVER_LOG_LINES))
        stop_server(server)
        raise
    return ApiRun(result, server, overload_requests, spread)


def window_edges(
    server: Service, window: Window, spread: dict[str, int], profiler: Profiler | None
) -> Callable[[str], None]:
    """What happens at the edges of the measured window: CPU snapshots, the connections each
    server process holds (into `spread`), and the profiler's start and stop."""

    def on_window(edge: str) -> None:
        window(edge)
        if edge == "start":
            spread.update(connections_per_process(server.process.pid, server.port))
        if profiler is None:
            return
        if edge == "start":
            profiler.start(server.process.pid)
            profiler.activity.start()
        else:
            profiler.activity.stop()

    return on_window
