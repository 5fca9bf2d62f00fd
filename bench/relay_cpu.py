"""Relay CPU per event against the raw cost of the same reads and publishes, in one run.

`strata-relay --context users` on fresh databases; its CPU (`/proc/<pid>/stat`) over a
**paced** phase (`--rate` registrations/s, one event per transaction, for `--seconds`) and a
**backlog** (`--events` appended at once), each until the stream holds the last event. Then
the raw cost of the same work from a bare client here (`time.process_time`): the same rows
read with the relay's query (one per page of <= 500) and the same messages, built beforehand,
published with `publish_async` (<= 256 in flight) into a stream of their own, every ack
awaited; paced at the moments the events arrived, or all at once. Prints CPU per event and
relay / raw. Details: bench/README.md.

    .venv/bin/python bench/relay_cpu.py                         # 100/s for 20 s, 20,000 events
    .venv/bin/python bench/relay_cpu.py --rate 100 --seconds 10 --events 5000 --profile DIR

`--profile DIR`: py-spy samples of the relay per phase in DIR/relay-<phase>.txt (collapsed
stacks; `.venv/bin/pip install py-spy`). Needs PostgreSQL (`--pg`) and NATS (`--nats`).
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import psycopg
from bench_host import free_port
from nats.js.errors import NotFoundError
from psycopg.sql import SQL, Composed, Identifier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contexts.registered import REGISTRY
from contexts.settings import Settings, database_url_fields
from domain.ports import EventMetadata, SideRecords
from domain.service import CommandContext
from domain.users.profile import UserProfile
from domain.users.service import UsersService
from eventlog.jetstream import ContextStream, connect, ensure_stream, last_message
from eventlog.postgres_recorder import PostgresSideRecordRecorder
from eventlog.relay_publish import relay_headers
from eventlog.stores import Services, build_services

DB_PREFIX = "strata_bench_relaycpu"
CONTEXT = "users"
PAGE = 500
IN_FLIGHT = 256
TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@dataclass
class Phase:
    events: int
    cpu: float
    seconds: float

    @property
    def ms_per_event(self) -> float:
        return 1000 * self.cpu / self.events


class RelayProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "eventlog.relay_main", "--context", CONTEXT]
        with log_path.open("ab") as output:
            self.process = subprocess.Popen(
                command,
                env={**env, "STRATA_RELAY_PORT": str(self.port)},
                stdout=output,
                stderr=output,
            )

    def active(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=1) as response:
                return f'strata_relay_active{{context="{CONTEXT}"}} 1.0' in response.read().decode()
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def _wait(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"{what}: not within {seconds:g} s")
        time.sleep(0.02)


class StreamTip:
    """The stream's last position, asked from a connection of its own."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._nc = self._loop.run_until_complete(connect(settings, name="bench-relay-cpu"))
        self._stream = ContextStream(CONTEXT, settings.stream_namespace).name

    def position(self) -> int:
        message = self._loop.run_until_complete(last_message(self._nc.jetstream(), self._stream))
        return int((message.headers or {})["Strata-Position"]) if message else 0

    def close(self) -> None:
        self._loop.run_until_complete(self._nc.close())
        self._loop.close()


@contextlib.contextmanager
def sampled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy samples of `pid`'s CPU time into `out` (collapsed stacks) meanwhile, if asked."""
    if out is None:
        yield
        return
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / command[0]), *command[1:], "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)  # attached
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


def measured(
    relay: RelayProcess, tip: StreamTip, work: Callable[[], int], profile: Path | None
) -> Phase:
    """Relay CPU from before `work()` (which appends and returns the last position) until the
    stream holds that position."""
    with sampled(relay.process.pid, profile):
        started, cpu = time.monotonic(), cpu_seconds(relay.process.pid)
        before = tip.position()
        last = work()
        _wait(lambda: tip.position() >= last, "the relay publishes everything")
        seconds = time.monotonic() - started
        return Phase(last - before, cpu_seconds(relay.process.pid) - cpu, seconds)


def users_recorder(services: Services) -> PostgresSideRecordRecorder:
    """The users store's recorder (the bench's stores are PostgreSQL)."""
    recorder = services.users.recorder
    if not isinstance(recorder, PostgresSideRecordRecorder):
        raise TypeError(f"expected a PostgreSQL store, found {type(recorder).__name__}")
    return recorder


def paced_appends(services: Services, rate: float, seconds: float) -> list[tuple[float, int]]:
    """Register `rate` users per second for `seconds`: (moment, position) of each commit."""
    arrivals: list[tuple[float, int]] = []
    users, recorder = services.application(UsersService), users_recorder(services)
    start = time.monotonic()
    for number in range(int(rate * seconds)):
        due = start + number / rate
        time.sleep(max(0.0, due - time.monotonic()))
        ctx = CommandContext(correlation_id=f"bench-{number}")
        users.register(ctx, "Bench", f"b{uuid.uuid4().hex[:16]}@example.com")
        arrivals.append((time.monotonic() - start, recorder.max_notification_id() or 0))
    return arrivals


def backlog_appends(services: Services, events: int) -> int:
    """Append `events` registrations in transactions of PAGE; the last position."""
    positions: Sequence[int] = []
    recorder = users_recorder(services)
    for start in range(0, events, PAGE):
        profiles = [
            UserProfile.register("Bench", f"b{uuid.uuid4().hex[:16]}@example.com")
            for _ in range(min(PAGE, events - start))
        ]
        stored = [
            services.users.mapper.to_stored_event(e) for p in profiles for e in p.collect_events()
        ]
        metadata = [
            EventMetadata(p.id, s.originator_version, p.created_on, f"bench-{start}")
            for s, p in zip(stored, profiles, strict=True)
        ]
        positions = recorder.insert_events(
            stored, side_records=SideRecords(event_metadata=metadata)
        )
    return positions[-1]


@dataclass(frozen=True)
class Message:
    subject: str
    body: bytes
    headers: dict[str, str]


def stream_messages(services: Services, settings: Settings, upto: int) -> list[Message]:
    """The messages the relay published for positions 1..upto, built as it builds them."""
    stream = ContextStream(CONTEXT, settings.stream_namespace)
    envelopes = users_recorder(services).select_envelopes(CONTEXT, 0, upto)
    messages, previous = [], None
    for envelope in envelopes:
        headers = relay_headers(envelope, stream.name, previous)
        messages.append(Message(stream.subject_of(envelope), envelope.to_json(), headers))
        previous = envelope.message_id
    return messages


async def raw_run(
    pg_url: str,
    query: Composed,
    settings: Settings,
    messages: list[Message],
    steps: list[tuple[float, int]],
    after: int,
) -> Phase:
    """Read the rows up to each step's position with the relay's query (one per page; positions
    have no holes here) and publish that many of the prebuilt messages, awaiting their acks;
    paced by the steps' moments (all at 0: a backlog)."""
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream(publish_async_max_pending=IN_FLIGHT)
    await ensure_stream(js, CONTEXT, settings)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cursor, sent = conn.cursor(), 0
        started, cpu = time.monotonic(), time.process_time()
        for moment, upto in steps:
            await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
            while after < upto:
                await cursor.execute(query, [after, min(PAGE, upto - after)], prepare=True)
                rows = await cursor.fetchall()
                after = rows[-1][0]
                for message in messages[sent : sent + len(rows)]:
                    await js.publish_async(message.subject, message.body, headers=message.headers)
                sent += len(rows)
            await js.publish_async_completed()
        phase = Phase(sent, time.process_time() - cpu, time.monotonic() - started)
    await nc.close()
    return phase


async def delete_streams(settings: Settings, namespaces: list[str]) -> None:
    nc = await connect(settings, name="bench-relay-cpu")
    for namespace in namespaces:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(ContextStream(CONTEXT, namespace).name)
    await nc.close()


def recreate(pg: str, names: list[str]) -> None:
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(Identifier(name)))
            conn.execute(SQL("CREATE DATABASE {}").format(Identifier(name)))


def report(phases: dict[str, Phase], raw: dict[str, Phase]) -> dict[str, Any]:
    rows = {}
    for name, relay in phases.items():
        floor = raw[name]
        rows[name] = {
            "events": relay.events,
            "relay_ms_per_event": round(relay.ms_per_event, 4),
            "raw_ms_per_event": round(floor.ms_per_event, 4),
            "relay_over_raw": round(relay.ms_per_event / floor.ms_per_event, 2),
            "relay_seconds": round(relay.seconds, 2),
            "raw_seconds": round(floor.seconds, 2),
        }
    return rows


@dataclass(frozen=True)
class Bench:
    settings: Settings
    urls: dict[str, str]
    services: Services
    relay: RelayProcess
    tip: StreamTip
    profile: Path | None

    def phase(self, name: str, work: Callable[[], int]) -> Phase:
        out = self.profile / f"relay-{name}.txt" if self.profile else None
        return measured(self.relay, self.tip, work, out)

    def raw(self, messages: list[Message], steps: list[tuple[float, int]], after: int) -> Phase:
        settings = self.settings.model_copy(
            update={"stream_namespace": f"{self.settings.stream_namespace}raw"}
        )
        stream = ContextStream(CONTEXT, settings.stream_namespace)
        rebuilt = [
            Message(f"{settings.stream_namespace}.{m.subject.partition('.')[2]}", m.body, m.headers)
            for m in messages
        ]
        for message in rebuilt:
            message.headers["Nats-Expected-Stream"] = stream.name
        query = users_recorder(self.services).envelope_page_statement()
        return asyncio.run(raw_run(self.urls[CONTEXT], query, settings, rebuilt, steps, after))


def measure(bench: Bench, rate: float, seconds: float, events: int) -> dict[str, Any]:
    arrivals: list[tuple[float, int]] = []

    def paced() -> int:
        arrivals.extend(paced_appends(bench.services, rate, seconds))
        return arrivals[-1][1]

    log(f"paced: {rate:g}/s for {seconds:g} s")
    phases = {"paced": bench.phase("paced", paced)}
    log(f"backlog: {events} events")
    phases["backlog"] = bench.phase("backlog", lambda: backlog_appends(bench.services, events))
    paced_end, backlog_end = arrivals[-1][1], bench.tip.position()
    messages = stream_messages(bench.services, bench.settings, backlog_end)
    log("raw paced and raw backlog, the same rows and messages")
    raw = {
        "paced": bench.raw(messages[:paced_end], arrivals, 0),
        "backlog": bench.raw(messages[paced_end:], [(0.0, backlog_end)], paced_end),
    }
    return report(phases, raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--rate", type=float, default=100, help="paced appends per second")
    parser.add_argument("--seconds", type=float, default=20, help="length of the paced phase")
    parser.add_argument("--events", type=int, default=20_000, help="size of the backlog")
    parser.add_argument("--profile", type=Path, help="sample the relay with py-spy into DIR")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()

    urls = {name: f"{arguments.pg}/{DB_PREFIX}_{name}" for name in REGISTRY.names}
    recreate(arguments.pg, [f"{DB_PREFIX}_{name}" for name in REGISTRY.names])
    settings = Settings(
        **database_url_fields(urls),
        nats_url=arguments.nats,
        stream_namespace=f"relaycpu{uuid.uuid4().hex[:8]}",
        group_commit=False,
    )
    services = build_services(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env |= {
        **{REGISTRY[name].database_url_variable: url for name, url in urls.items()},
        "STRATA_NATS_URL": settings.nats_url,
        "STRATA_STREAM_NAMESPACE": settings.stream_namespace,
        "STRATA_LOG_LEVEL": "info",
    }
    logs = Path(tempfile.mkdtemp(prefix="relay-cpu-"))
    if arguments.profile:
        arguments.profile.mkdir(parents=True, exist_ok=True)
    relay = RelayProcess(env, logs / "relay.log")
    tip = StreamTip(settings)
    try:
        _wait(relay.active, "the relay is active", 60)
        time.sleep(1.0)  # idle, waiting on LISTEN
        bench = Bench(settings, urls, services, relay, tip, arguments.profile)
        rows = measure(bench, arguments.rate, arguments.seconds, arguments.events)
    finally:
        tip.close()
        relay.stop()
        services.close()
        namespaces = [settings.stream_namespace, f"{settings.stream_namespace}raw"]
        asyncio.run(delete_streams(settings, namespaces))
    if arguments.json:
        print(json.dumps(rows, indent=2))
        return
    for name, row in rows.items():
        print(
            f"{name:>8}: {row['events']} events; relay {row['relay_ms_per_event']:.3f} ms"
            f" CPU/event, raw {row['raw_ms_per_event']:.3f} ms;"
            f" relay / raw {row['relay_over_raw']:.2f}"
        )
    print(f"relay log: {logs / 'relay.log'}")


if __name__ == "__main__":
    main()
