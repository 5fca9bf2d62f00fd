"""The whole stack as real processes under the supervisor, on throwaway servers, one write
service per context and the providers' simulators, wired as `contexts.deployment` wires them: what
the e2e tests of outages, of contexts apart and of the fulfilment share (one stack per test
session, `tests/e2e/conftest.py`), and a client issuing commands of every kind."""

import itertools
import os
import random
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from contexts.deployment import deployments, simulators, write_service_environment
from contexts.registered import REGISTRY
from contexts.settings import Settings, database_url_fields
from tests.support.auth import OPERATOR, JwksServer
from tests.support.processes import BIN, free_port, stop_process
from tests.support.servers import Servers, throwaway_servers, wait_until

PROJECTORS = ("projector", "standby")
"""Two projectors: one consumes, the other is its hot standby (either may lead after an outage)."""
WRITE_SERVICES = tuple(f"write-{context}" for context in REGISTRY.names)
RELAYS = tuple(f"relay-{context}" for context in REGISTRY.names)
SIMULATORS = tuple(simulator.service for simulator in simulators())
REPLICA_WAIT_SECONDS = 1.0


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
        urls = {c.name: self.env[c.database_url_variable] for c in REGISTRY}
        return Settings(**database_url_fields(urls), group_commit=False)

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

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def pid(self, name: str) -> int:
        """The process id of the process's latest start, as the supervisor logged it."""
        started = re.findall(rf"started {re.escape(name)} \(pid (\d+)\)", self.supervisor_log())
        return int(started[-1])


def _programs(ports: dict[str, int], logs: Path) -> list[str]:
    """The simulators, their ledgers beside the logs; each write service with its own store's URL
    only, its own port, and the URLs of the services it calls."""
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    programs = [
        f"{s.service}=env {s.ledger_variable}={logs}/{s.service}.sqlite"
        f" {BIN}/{s.script} --port {ports[s.service]}"
        for s in simulators()
    ]
    for d in deployments():
        context = d.context
        others = " ".join(
            f"-u {other.database_url_variable}" for other in REGISTRY if other is not context
        )
        wiring = "".join(f" {k}={v}" for k, v in write_service_environment(d, urls).items())
        if context.name == "payments":
            # tests/e2e/test_fulfilment_stack.py counts the breaker's calls exactly, as one
            # caller makes them: jobs run several at once would add the calls under way when it
            # opens (docs/config.md).
            wiring += " STRATA_JOB_CONCURRENCY=1"
        programs += [
            f"write-{context.name}=env {others} STRATA_PORT={ports[f'write-{context.name}']}"
            f"{wiring} {BIN}/strata-write-api --context {context.name}",
            f"relay-{context.name}=env {others} STRATA_RELAY_PORT={ports[f'relay-{context.name}']}"
            f" {BIN}/strata-relay --context {context.name}",
        ]
    return [
        *programs,
        f"projector={BIN}/strata-projector",
        f"standby=env STRATA_PROJECTOR_PORT={ports['standby']} {BIN}/strata-projector",
        f"read-api={BIN}/strata-read-api",
    ]


@contextmanager
def running_stack(logs: Path, identity: JwksServer) -> Iterator[Stack]:
    with throwaway_servers() as servers:
        databases = [context.database_name for context in REGISTRY]
        urls = servers.postgres.create_databases(*databases, "strata_read")
        names = (*SIMULATORS, *WRITE_SERVICES, *RELAYS, *PROJECTORS, "read-api")
        ports = {name: free_port() for name in names}
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STRATA_")},
            **{c.database_url_variable: urls[c.database_name] for c in REGISTRY},
            "STRATA_READ_DATABASE_URL": urls["strata_read"],
            "STRATA_REDIS_URL": servers.redis.url,
            "STRATA_NATS_URL": servers.nats.url,
            "STRATA_PROJECTOR_PORT": str(ports["projector"]),
            "STRATA_READ_API_PORT": str(ports["read-api"]),
            "STRATA_PROJECTOR_BATCH_SIZE": "32",
            "STRATA_REPLICA_WAIT_SECONDS": str(REPLICA_WAIT_SECONDS),
            # Breakers probe a provider back after 1 s instead of 10: outage tests stay short.
            "STRATA_BREAKER_RECOVERY_SECONDS": "1",
            **identity.settings(),
        }
        supervisor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runtime.supervisor",
                "--logs",
                str(logs),
                *_programs(ports, logs),
            ],
            env=env,
            stderr=(logs / "supervisor.log").open("wb"),
        )
        stack = Stack(servers, env, ports, supervisor, logs)
        try:
            wait_until(stack.all_ready, 60, "every process is ready, one projector leading")
            yield stack
        finally:
            stop_process(supervisor)


class Commands(threading.Thread):
    """A client issuing commands of every kind through the write services, whatever they
    answer. An order names its user's registration `position`, as a client of orders should."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self._users_api = httpx.Client(
            base_url=stack.url("write-users"), headers=OPERATOR, timeout=10
        )
        self._orders_api = httpx.Client(
            base_url=stack.url("write-orders"), headers=OPERATOR, timeout=10
        )
        self._halt = threading.Event()
        self._rng = random.Random(7)
        self.answers: Counter[int] = Counter()
        self._users: list[tuple[str, str]] = []
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
        self._users_api.close()
        self._orders_api.close()

    def accepted(self) -> int:
        return sum(n for status, n in self.answers.items() if 200 <= status < 300)

    def _one(self) -> None:
        roll, rng = self._rng.random(), self._rng
        if roll < 0.25 or not self._users:
            email = f"u{rng.getrandbits(48):x}@example.com"
            registered = self._post(self._users_api, "/users", {"name": "Outage", "email": email})
            if registered is not None:
                self._users.append((registered["id"], registered["position"]))
        elif roll < 0.45:
            user, position = rng.choice(self._users)
            body = {"user_id": user, "currency": "EUR"}
            created = self._post(self._orders_api, f"/orders?position={position}", body)
            if created is not None:
                self._orders.append(created["id"])
        elif roll < 0.65 and self._orders:
            line = {
                "sku": f"S{rng.randrange(50)}",
                "quantity": rng.randrange(1, 4),
                "unit_price": f"{rng.randrange(1, 5000) / 100:.2f}",
            }
            self._post(self._orders_api, f"/orders/{rng.choice(self._orders)}/lines", line)
        elif roll < 0.8 and self._orders:
            step = rng.choice(["place", "pay"])
            self._post(self._orders_api, f"/orders/{rng.choice(self._orders)}/{step}", None)
        else:
            user, _ = rng.choice(self._users)
            name = {"name": f"n{roll:.6f}"}
            self._answer(self._users_api.put(f"/users/{user}/name", json=name))

    def _post(self, api: httpx.Client, path: str, body: object) -> dict[str, str] | None:
        """The body of a 201, else None."""
        response = api.post(path, json=body)
        self._answer(response)
        return response.json() if response.status_code == 201 else None

    def _answer(self, response: httpx.Response) -> None:
        self.answers[response.status_code] += 1
