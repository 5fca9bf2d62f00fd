"""Design invariant 10, outages heal (issue 7, item 8): with every long-running process of the
stack up under its supervisor (a projector with its hot standby among them) and commands
flowing, PostgreSQL, NATS or Redis goes down hard for ten seconds and comes back. Then, with no
action by a person: no process was restarted, every one is ready (one projector leading), the
read API reads a new write, every projection has caught up with its event store, and the read
models equal a clean re-projection of the log.

Redis may also come back with less than it had, as deployments without an append-only file do:
empty (no persistence), or rolled back to an older RDB snapshot. The projector must notice that
the checkpoints of the Redis models went back and re-project them from there, with the same
outcome.

The servers are throwaway ones on free ports (tests/support/servers.py), shared by the tests
with one stack; each test takes a server down in its own way.
"""

import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from redis import Redis

from contexts.settings import CONTEXTS, Settings
from eventlog.envelope import envelope_source
from eventlog.stores import build_services
from projections.catchup import project_log
from projections.engine import Target
from projections.model import OpsProjection
from projections.models import all_projections
from projections.targets import stack_targets
from readmodels.keys import RedisLayout
from readmodels.sql import PostgresDatabase
from tests.support.dumps import dump_read_models
from tests.support.processes import BIN, free_port
from tests.support.servers import Servers, throwaway_servers, wait_until

OUTAGE_SECONDS = 10.0
RECOVERY_SECONDS = 120.0
NEEDS = {
    "postgres": {"write-api", "relay-users", "relay-orders", "projector", "standby", "read-api"},
    "nats": {"relay-users", "relay-orders", "projector", "standby"},
    "redis": {"projector", "standby", "read-api"},
}
"""The processes that must report not ready while each server is down."""
PROJECTORS = ("projector", "standby")
"""Two projectors: one consumes, the other is its hot standby (either may lead after an outage)."""


@dataclass
class Stack:
    servers: Servers
    env: dict[str, str]
    ports: dict[str, int]
    supervisor: subprocess.Popen[bytes]
    logs: Path
    oracles: Iterator[int] = field(default_factory=itertools.count)

    @property
    def settings(self) -> Settings:
        return Settings(
            users_database_url=self.env["STRATA_USERS_DATABASE_URL"],
            orders_database_url=self.env["STRATA_ORDERS_DATABASE_URL"],
            group_commit=False,
        )

    def ready(self, name: str) -> bool:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.ports[name]}/readyz", timeout=5)
        except httpx.TransportError:
            return False
        return response.status_code == 200

    def all_ready(self) -> bool:
        """Every process is ready, the standby projector excepted: exactly one projector leads."""
        ready = {name for name in self.ports if self.ready(name)}
        leaders = ready.intersection(PROJECTORS)
        return len(leaders) == 1 and set(self.ports) - ready == set(PROJECTORS) - leaders

    def supervisor_log(self) -> str:
        return (self.logs / "supervisor.log").read_text()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with throwaway_servers() as servers:
        urls = servers.postgres.create_databases("strata_users", "strata_orders", "strata_read")
        logs = tmp_path_factory.mktemp("outage-stack")
        ports = {
            name: free_port()
            for name in ("write-api", "relay-users", "relay-orders", *PROJECTORS, "read-api")
        }
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STRATA_")},
            "STRATA_USERS_DATABASE_URL": urls["strata_users"],
            "STRATA_ORDERS_DATABASE_URL": urls["strata_orders"],
            "STRATA_READ_DATABASE_URL": urls["strata_read"],
            "STRATA_REDIS_URL": servers.redis.url,
            "STRATA_NATS_URL": servers.nats.url,
            "STRATA_PORT": str(ports["write-api"]),
            "STRATA_PROJECTOR_PORT": str(ports["projector"]),
            "STRATA_READ_API_PORT": str(ports["read-api"]),
            "STRATA_PROJECTOR_BATCH_SIZE": "32",
        }
        relay = f"{BIN}/strata-relay --context"
        programs = [
            f"write-api={BIN}/strata-write-api",
            f"relay-users=env STRATA_RELAY_PORT={ports['relay-users']} {relay} users",
            f"relay-orders=env STRATA_RELAY_PORT={ports['relay-orders']} {relay} orders",
            f"projector={BIN}/strata-projector",
            f"standby=env STRATA_PROJECTOR_PORT={ports['standby']} {BIN}/strata-projector",
            f"read-api={BIN}/strata-read-api",
        ]
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "runtime.supervisor", "--logs", str(logs), *programs],
            env=env,
            stderr=(logs / "supervisor.log").open("wb"),
        )
        stack = Stack(servers, env, ports, supervisor, logs)
        try:
            wait_until(stack.all_ready, 60, "every process is ready, one projector leading")
            yield stack
        finally:
            supervisor.send_signal(signal.SIGTERM)
            try:
                supervisor.wait(timeout=60)
            except subprocess.TimeoutExpired:
                supervisor.kill()


class Commands(threading.Thread):
    """A client issuing commands of every kind through the write API, whatever it answers."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self._client = httpx.Client(base_url=base, timeout=10)
        self._halt = threading.Event()
        self._rng = random.Random(7)
        self.answers: Counter[int] = Counter()
        self._users: list[str] = []
        self._orders: list[str] = []

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self._one()
            except httpx.TransportError:
                self.answers[0] += 1
            self._halt.wait(0.01)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
        self._client.close()

    def accepted(self) -> int:
        return sum(n for status, n in self.answers.items() if 200 <= status < 300)

    def _one(self) -> None:
        roll, rng = self._rng.random(), self._rng
        if roll < 0.25 or not self._users:
            email = f"u{rng.getrandbits(48):x}@example.com"
            self._post("/users", {"name": "Outage", "email": email}, into=self._users)
        elif roll < 0.45:
            self._post(
                "/orders",
                {"user_id": rng.choice(self._users), "currency": "EUR"},
                into=self._orders,
            )
        elif roll < 0.65 and self._orders:
            line = {
                "sku": f"S{rng.randrange(50)}",
                "quantity": rng.randrange(1, 4),
                "unit_price": f"{rng.randrange(1, 5000) / 100:.2f}",
            }
            self._post(f"/orders/{rng.choice(self._orders)}/lines", line)
        elif roll < 0.8 and self._orders:
            self._post(f"/orders/{rng.choice(self._orders)}/{rng.choice(['place', 'pay'])}", None)
        else:
            user = rng.choice(self._users)
            self._answer(self._client.put(f"/users/{user}/name", json={"name": f"n{roll:.6f}"}))

    def _post(self, path: str, body: object, into: list[str] | None = None) -> None:
        response = self._client.post(path, json=body)
        self._answer(response)
        if response.status_code == 201 and into is not None:
            into.append(response.json()["id"])

    def _answer(self, response: httpx.Response) -> None:
        self.answers[response.status_code] += 1


REDIS_MODELS = tuple(p for p in all_projections() if isinstance(p, OpsProjection))


@pytest.mark.parametrize("server", ["redis", "nats", "postgres"])
def test_every_process_heals_by_itself_after_an_outage(stack: Stack, server: str) -> None:
    _heals_after(stack, lambda: _outage(stack, server))


@pytest.mark.parametrize("kept", ["nothing", "an older snapshot"])
def test_the_projector_re_projects_what_a_restarted_redis_lost(stack: Stack, kept: str) -> None:
    """Redis is killed and restarted holding nothing, or only an RDB snapshot saved while the
    projector went on writing (its data and checkpoints older than what the projector wrote and
    acknowledged to JetStream)."""
    redis = stack.servers.redis

    def restart() -> None:
        snapshot = None
        if kept == "an older snapshot":
            snapshot = redis.snapshot()
            saved = _redis_checkpoints(stack)
            wait_until(
                lambda: all(n > saved[key] for key, n in _redis_checkpoints(stack).items()),
                RECOVERY_SECONDS,
                f"every Redis model moves past the snapshot's checkpoints {saved}",
            )
        redis.restart_from(snapshot)

    before = _lost_checkpoint_warnings(stack)
    _heals_after(stack, restart)
    assert set(_lost_checkpoint_warnings(stack) - before) == {p.label for p in REDIS_MODELS}


def _heals_after(stack: Stack, disrupt: Callable[[], None]) -> None:
    """`disrupt` the stack while commands flow; then check that everything healed by itself."""
    commands = Commands(f"http://127.0.0.1:{stack.ports['write-api']}")
    commands.start()
    try:
        wait_until(lambda: commands.accepted() >= 20, 60, "commands are accepted")
        disrupt()
        before = commands.accepted()
        wait_until(
            lambda: commands.accepted() >= before + 20,
            RECOVERY_SECONDS,
            "commands are accepted again after the outage",
        )
    finally:
        commands.stop()

    wait_until(stack.all_ready, RECOVERY_SECONDS, "every process is ready, one projector leading")
    assert stack.supervisor.poll() is None
    assert " exited " not in stack.supervisor_log()  # healed by itself, not restarted
    server_errors = {s: n for s, n in commands.answers.items() if s >= 500 and s != 503}
    assert server_errors == {}, commands.answers
    _assert_reads_its_writes(stack)
    _assert_caught_up_and_equal_to_a_clean_rebuild(stack)


def _assert_reads_its_writes(stack: Stack) -> None:
    """The first reads after the outage are answered (no dead pooled connection is drawn): a
    user registered now is read back at its position, from Redis and from PostgreSQL."""
    write = f"http://127.0.0.1:{stack.ports['write-api']}"
    read = f"http://127.0.0.1:{stack.ports['read-api']}"
    created = httpx.post(
        f"{write}/users", json={"name": "After", "email": f"after-{uuid.uuid4().hex}@example.com"}
    )
    assert created.status_code == 201, created.text
    user, position = created.json()["id"], created.json()["position"]
    wait = {"position": position, "wait": 10}
    profile = httpx.get(f"{read}/users/{user}", params=wait, timeout=15)
    assert profile.status_code == 200, profile.text
    listed = httpx.get(f"{read}/users", params={**wait, "name_prefix": "After"}, timeout=15)
    assert listed.status_code == 200, listed.text
    assert user in listed.text


def _redis_checkpoints(stack: Stack) -> dict[str, int]:
    layout = RedisLayout()
    keys = {
        f"{p.label} {context}": layout.checkpoint_key(p.name, p.version, context)
        for p in REDIS_MODELS
        for context in p.contexts
    }
    with stack.servers.redis.client() as client:
        values = client.mget(list(keys.values()))
    return {name: int(value or 0) for name, value in zip(keys, values, strict=True)}


def _lost_checkpoint_warnings(stack: Stack) -> Counter[str]:
    """How many times each projection was found lost in Redis, by either projector's log."""
    found: Counter[str] = Counter()
    for name in PROJECTORS:
        log = stack.logs / f"{name}.log"
        for line in log.read_text().splitlines() if log.exists() else ():
            for projection in REDIS_MODELS:
                if f"Redis lost checkpoint for {projection.label} " in line:
                    found[projection.label] += 1
    return found


def _outage(stack: Stack, server: str) -> None:
    """Take `server` down hard; bring it back once the outage lasted OUTAGE_SECONDS and every
    process that needs it reported not ready."""
    down = stack.servers.by_name(server)
    down.crash()
    started = time.monotonic()
    try:
        for name in sorted(NEEDS[server]):
            wait_until(lambda name=name: not stack.ready(name), 30, f"{name} reports not ready")
        remaining = OUTAGE_SECONDS - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)  # the outage's length, not a wait for a result
    finally:
        down.start()


def _assert_caught_up_and_equal_to_a_clean_rebuild(stack: Stack) -> None:
    services = build_services(stack.settings)
    read_db = PostgresDatabase(stack.env["STRATA_READ_DATABASE_URL"])
    redis = Redis.from_url(stack.env["STRATA_REDIS_URL"])
    oracle_name = f"oracle_{next(stack.oracles)}"
    oracle_url = stack.servers.postgres.create_databases(oracle_name)[oracle_name]
    oracle_db = PostgresDatabase(oracle_url)
    try:
        heads = {s.name: s.recorder.max_notification_id() or 0 for s in services.all()}
        live = stack_targets(read_db, redis)
        wait_until(lambda: _caught_up(live, heads), RECOVERY_SECONDS, f"caught up with {heads}")

        oracle = stack_targets(oracle_db, redis, layout=RedisLayout(root=f"rm_{oracle_name}"))
        sources = {s.name: envelope_source(s.recorder) for s in services.all()}
        project_log(sources, oracle, until=heads)
        live_dump = dump_read_models(live)
        assert len(live_dump["users_directory"]["users_directory"]) >= 10
        assert live_dump == dump_read_models(oracle)
    finally:
        oracle_db.close()
        read_db.close()
        redis.close()
        services.close()


def _caught_up(targets: list[Target], heads: dict[str, int]) -> bool:
    try:
        return all(
            target.checkpoint(context).position == heads[context]
            for target in targets
            for context in target.projection.contexts
            if context in CONTEXTS
        )
    except (psycopg.Error, OSError):
        return False
