"""(a) of bench/write_throughput.py: raw PostgreSQL, one INSERT + COMMIT per event from N
threads, each with its own connection."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import psycopg
from bench_host import ensure_database
from proc_cpu import Window
from write_server import DB_SUFFIX

RAW_DB = f"strata_bench_raw{DB_SUFFIX}"
RAW_TABLE = """
CREATE TABLE IF NOT EXISTS bench_events (
    id bigserial PRIMARY KEY,
    stream_id uuid NOT NULL,
    version int NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
)"""
RAW_INSERT = "INSERT INTO bench_events (stream_id, version, type, data) VALUES (%s, %s, %s, %s)"


def event_payload() -> str:
    """A JSON document of ~260 bytes, shaped like a registration event."""
    doc = {
        "name": "Ada Lovelace",
        "email": "ada.lovelace@analytical-engine.example.com",
        "originator_topic": "domain.users.profile:UserProfile",
        "timestamp": "2025-01-01T12:00:00.000000+00:00",
        "metadata": {"correlation_id": str(uuid.UUID(int=1)), "causation": None},
    }
    return json.dumps(doc, separators=(",", ":"))


@dataclass
class RawResult:
    clients: int
    seconds: float
    events: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def raw_postgres(
    base: str, *, clients: int, seconds: float, warmup: float, window: Window
) -> RawResult:
    ensure_database(base, RAW_DB)
    url = f"{base}/{RAW_DB}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
        conn.execute("TRUNCATE bench_events RESTART IDENTITY")
    data = event_payload()
    result = RawResult(clients=clients, seconds=seconds)
    clock = time.perf_counter
    edges: dict[str, float] = {}
    lock = threading.Lock()

    def set_edges() -> None:  # runs once every connection is open, before anyone starts
        now = clock()
        edges["from"], edges["stop"] = now + warmup, now + warmup + seconds

    ready = threading.Barrier(clients + 1, action=set_edges)
    finished_all = threading.Event()

    def writer() -> None:
        latencies: list[float] = []
        events = 0
        errors: Counter[str] = Counter()
        try:
            conn = psycopg.connect(url, autocommit=False)
        except psycopg.Error:
            ready.abort()  # the main thread then fails instead of waiting forever
            raise
        with conn:
            ready.wait(60)
            measure_from, stop_at = edges["from"], edges["stop"]
            while True:
                started = clock()
                if started >= stop_at:
                    break
                try:
                    conn.execute(RAW_INSERT, (uuid.uuid4(), 1, "UserProfile.Registered", data))
                    conn.commit()
                except psycopg.Error as error:
                    conn.rollback()
                    if started >= measure_from:
                        errors[type(error).__name__] += 1
                    continue
                finished = clock()
                if started >= measure_from and finished <= stop_at:
                    events += 1
                    latencies.append(finished - started)
            finished_all.wait(60)  # keep the backend alive until the CPU snapshot has it
        with lock:
            result.events += events
            result.latencies.extend(latencies)
            result.errors.update(errors)

    threads = [threading.Thread(target=writer, name=f"raw-{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        ready.wait(60)
    except threading.BrokenBarrierError:
        raise RuntimeError("raw PostgreSQL clients could not connect") from None
    time.sleep(max(0.0, edges["from"] - clock()))
    window("start")
    time.sleep(max(0.0, edges["stop"] - clock()))
    window("end")
    window.snapshot("end")
    finished_all.set()
    for thread in threads:
        thread.join()
    return result
