"""Relay takeover: kill -9 of the active relay → the hot standby publishes the next event.

Two `strata-relay --context users` processes on fresh databases `strata_bench_takeover_<context>`
(one per registered context) and a stream namespace of their own (its streams are deleted at the
end). Each round: an event is relayed, the active relay gets SIGKILL, and at once one more event
is appended; the round measures, from the kill:

- **lock**: the standby logs "holding the relay lock" (it tries the lock every 0.5 s);
- **resumed**: it logs "resuming after position ..." (LISTEN, read the stream's last message);
- **published**: the appended event is in the stream (its last message polled every 5 ms).

The moment of the kill is random within the standby's lock loop. `--load N` appends N events/s
in the background throughout.

The killed relay is then started again as the new standby. Prints each round and the median and
maximum of each stage.

    .venv/bin/python bench/relay_takeover.py               # 10 rounds
    .venv/bin/python bench/relay_takeover.py --rounds 20 --load 200 --json

Needs PostgreSQL (`--pg`, default postgresql://postgres@127.0.0.1:5432) and NATS (`--nats`).
Exit 0; 2 if a relay did not start or a takeover did not happen within 30 s.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import psycopg
from nats.js.errors import NotFoundError
from psycopg.sql import SQL, Identifier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contexts.registered import REGISTRY
from contexts.settings import Settings, database_url_fields
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.jetstream import ContextStream, connect, last_message
from eventlog.stores import Services, build_services

DB_PREFIX = "strata_bench_takeover"
DEADLINE = 30.0


class Relay:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "eventlog.relay_main", "--context", "users"],
                env={**env, "STRATA_RELAY_PORT": str(self.port)},
                stdout=output,
                stderr=output,
            )

    def active(self) -> bool | None:
        try:
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=1) as response:
                text = response.read().decode()
        except OSError:
            return None
        return 'strata_relay_active{context="users"} 1.0' in text

    def standing_by(self) -> bool:
        return self.active() is False

    def logged_after(self, since: float, message: str) -> float | None:
        """Unix time of the first log line after `since` starting with `message`."""
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            moment = datetime.fromisoformat(entry["time"]).timestamp()
            if moment >= since and str(entry.get("message", "")).startswith(message):
                return moment
        return None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"{what}: not within {DEADLINE:g} s")
        time.sleep(0.005)


def _recreate(pg: str, names: list[str]) -> None:
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(Identifier(name)))
            conn.execute(SQL("CREATE DATABASE {}").format(Identifier(name)))


def _stream_tip(settings: Settings) -> int:
    async def read() -> int:
        nc = await connect(settings, name="bench-takeover")
        try:
            stream = ContextStream("users", settings.stream_namespace).name
            message = await last_message(nc.jetstream(), stream)
            return int((message.headers or {})["Strata-Position"]) if message else 0
        finally:
            await nc.close()

    return asyncio.run(read())


async def _delete_streams(settings: Settings) -> None:
    nc = await connect(settings, name="bench-takeover")
    try:
        for context in REGISTRY.names:
            with contextlib.suppress(NotFoundError):
                await nc.jetstream().delete_stream(
                    ContextStream(context, settings.stream_namespace).name
                )
    finally:
        await nc.close()


def _append(services: Services) -> int:
    ctx = CommandContext()
    services.application(UsersService).register(
        ctx, "Takeover", f"t{uuid.uuid4().hex[:12]}@example.com"
    )
    return services.users.recorder.max_notification_id() or 0


def _takeover(
    active: Relay, standby: Relay, services: Services, settings: Settings
) -> dict[str, float]:
    """One round: kill the active relay, append an event; seconds from the kill to each stage."""
    relayed = _append(services)
    _wait(lambda: _stream_tip(settings) >= relayed, "an event is relayed")
    time.sleep(random.uniform(1.0, 1.5))  # any moment of the standby's lock loop
    killed_at = time.time()
    active.kill()
    position = _append(services)
    _wait(lambda: _stream_tip(settings) >= position, "the standby publishes")
    published = time.time() - killed_at
    return {
        "lock": (standby.logged_after(killed_at, "holding the relay lock") or 0) - killed_at,
        "resumed": (standby.logged_after(killed_at, "resuming after") or 0) - killed_at,
        "published": published,
    }


def _load(services: Services, rate: float, stop: threading.Event) -> None:
    while not stop.wait(1 / rate):
        _append(services)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--load", type=float, default=0, help="events/s appended in the background meanwhile"
    )
    arguments = parser.parse_args()

    urls = {name: f"{arguments.pg}/{DB_PREFIX}_{name}" for name in REGISTRY.names}
    _recreate(arguments.pg, [f"{DB_PREFIX}_{name}" for name in REGISTRY.names])
    settings = Settings(
        **database_url_fields(urls),
        nats_url=arguments.nats,
        stream_namespace=f"takeover{uuid.uuid4().hex[:8]}",
        group_commit=False,
    )
    services = build_services(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env |= {
        **{REGISTRY[name].database_url_variable: url for name, url in urls.items()},
        "STRATA_NATS_URL": settings.nats_url,
        "STRATA_STREAM_NAMESPACE": settings.stream_namespace,
    }
    logs = Path(tempfile.mkdtemp(prefix="relay-takeover-"))
    active = Relay(env, logs / "relay-0.log")
    _wait(lambda: active.active() is True, "the first relay is active")
    standby = Relay(env, logs / "relay-1.log")
    _wait(standby.standing_by, "the second relay stands by")
    rounds: list[dict[str, float]] = []
    stop = threading.Event()
    if arguments.load:
        writer = threading.Thread(target=_load, args=(services, arguments.load, stop), daemon=True)
        writer.start()
    try:
        for number in range(arguments.rounds):
            rounds.append(_takeover(active, standby, services, settings))
            if not arguments.json:
                print(
                    f"round {number + 1}: "
                    + ", ".join(f"{k} {v:.3f} s" for k, v in rounds[-1].items())
                )
            active, standby = standby, Relay(env, logs / f"relay-{number + 2}.log")
            _wait(standby.standing_by, "the restarted relay stands by")
    finally:
        stop.set()
        active.stop()
        standby.stop()
        services.close()
        asyncio.run(_delete_streams(settings))
    summary = {
        stage: {
            "median": statistics.median(r[stage] for r in rounds),
            "max": max(r[stage] for r in rounds),
        }
        for stage in ("lock", "resumed", "published")
    }
    if arguments.json:
        print(json.dumps({"rounds": rounds, "summary": summary}, indent=2))
        return
    for stage, figures in summary.items():
        print(f"{stage:>9}: median {figures['median']:.3f} s, max {figures['max']:.3f} s")
    print(f"logs: {logs}")


if __name__ == "__main__":
    main()
