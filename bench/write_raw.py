"""(a) of bench/write_throughput.py: raw PostgreSQL, one INSERT + COMMIT per event from N
threads, each with its own connection."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
from bench_host import ensure_database
from proc_cpu import Window
from write_server import DB_SUFFIX

RAW_DB = f"strata_bench_raw{DB_SUFFIX}"
clock = time.perf_counter
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
    url = empty_raw_table(base)
    writers = RawWriters(url, RawResult(clients=clients, seconds=seconds), warmup)
    threads = [threading.Thread(target=writers.write, name=f"raw-{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        writers.ready.wait(60)
    except threading.BrokenBarrierError:
        raise RuntimeError("raw PostgreSQL clients could not connect") from None
    time.sleep(max(0.0, writers.measure_from - clock()))
    window("start")
    time.sleep(max(0.0, writers.stop_at - clock()))
    window("end")
    window.snapshot("end")
    writers.finished_all.set()
    for thread in threads:
        thread.join()
    return writers.result


def empty_raw_table(base: str) -> str:
    """The URL of the raw database, its events table created and emptied."""
    ensure_database(base, RAW_DB)
    url = f"{base}/{RAW_DB}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
        conn.execute("TRUNCATE bench_events RESTART IDENTITY")
    return url


class RawWriters:
    """The writer threads of (a): each with its own connection, all starting together once every
    connection is open, measured from `warmup` s later for `result.seconds`."""

    def __init__(self, url: str, result: RawResult, warmup: float) -> None:
        self.url = url
        self.result = result
        self.warmup = warmup
        self.data = event_payload()
        self.measure_from = self.stop_at = 0.0
        self.lock = threading.Lock()
        self.ready = threading.Barrier(result.clients + 1, action=self._set_edges)
        self.finished_all = threading.Event()

    def _set_edges(self) -> None:  # runs once every connection is open, before anyone starts
        now = clock()
        self.measure_from = now + self.warmup
        self.stop_at = self.measure_from + self.result.seconds

    def write(self) -> None:
        try:
            conn = psycopg.connect(self.url, autocommit=False)
        except psycopg.Error:
            self.ready.abort()  # the main thread then fails instead of waiting forever
            raise
        with conn:
            self.ready.wait(60)
            mine = self._commit_until_stop(conn)
            self.finished_all.wait(60)  # keep the backend alive until the CPU snapshot has it
        with self.lock:
            self.result.events += mine.events
            self.result.latencies.extend(mine.latencies)
            self.result.errors.update(mine.errors)

    def _commit_until_stop(self, conn: psycopg.Connection[Any]) -> RawResult:
        """One INSERT + COMMIT after another until the window ends; what the window saw."""
        mine = RawResult(clients=1, seconds=self.result.seconds)
        while (started := clock()) < self.stop_at:
            try:
                conn.execute(RAW_INSERT, (uuid.uuid4(), 1, "UserProfile.Registered", self.data))
                conn.commit()
            except psycopg.Error as error:
                conn.rollback()
                if started >= self.measure_from:
                    mine.errors[type(error).__name__] += 1
                continue
            finished = clock()
            if started >= self.measure_from and finished <= self.stop_at:
                mine.events += 1
                mine.latencies.append(finished - started)
        return mine
