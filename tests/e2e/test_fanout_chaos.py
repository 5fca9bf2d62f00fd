"""Design invariants 1 and 2 under faults: kill -9 the relays and the projector at random moments
while commands keep coming; after recovery the read models equal a clean re-projection of the log.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from redis import Redis

from contexts.settings import CONTEXTS
from domain.errors import DomainError
from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.envelope import envelope_source
from eventlog.jetstream import ContextStream
from eventlog.stores import Services, build_services
from projections.catchup import project_log
from projections.engine import Target
from projections.targets import stack_targets
from readmodels.keys import RedisLayout
from readmodels.sql import PostgresDatabase
from tests.support.dumps import dump_read_models
from tests.support.nats import delete_streams, new_namespace, require_nats
from tests.support.postgres import require_postgres, scratch_databases, url_variables
from tests.support.processes import free_port
from tests.support.read_models import require_redis, scratch_redis_database
from tests.support.settings import settings_of

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.postgres


@pytest.fixture
def stack_env() -> Iterator[dict[str, str]]:
    nats_url, redis_server = require_nats(), require_redis()
    namespace = new_namespace()
    with (
        scratch_databases(require_postgres(), *CONTEXTS, "read", "oracle") as urls,
        scratch_redis_database(redis_server) as redis_url,
    ):
        yield {
            **url_variables({name: url for name, url in urls.items() if name != "oracle"}),
            "STRATA_REDIS_URL": redis_url,
            "STRATA_NATS_URL": nats_url,
            "STRATA_STREAM_NAMESPACE": namespace,
            "STRATA_PROJECTOR_BATCH_SIZE": "32",
            "ORACLE_DATABASE_URL": urls["oracle"],
        }
        delete_streams(nats_url, *(ContextStream(c, namespace).name for c in CONTEXTS))


class Supervised:
    """A process that the test kills with SIGKILL and starts again, like a crash-looping pod."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args, self.env = args, env
        self.kills = 0
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.args, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def crash_and_restart(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.kills += 1
        self.process = self._spawn()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _commands(services: Services, stop: threading.Event, rng: random.Random) -> None:
    """A stream of commands of every kind, each appending one event."""
    ctx = CommandContext()
    user_service, order_service = (
        services.application(UsersService),
        services.application(OrdersService),
    )
    users: list[UUID] = []
    orders: list[UUID] = []
    while not stop.is_set():
        try:
            roll = rng.random()
            if roll < 0.2 or not users:
                email = f"u{rng.getrandbits(48):x}@example.com"
                users.append(user_service.register(ctx, "Chaos", email).id)
            elif roll < 0.35:
                orders.append(order_service.create_order(ctx, rng.choice(users), "EUR").id)
            elif roll < 0.5 and orders:
                sku = f"S{rng.randrange(1000)}"
                price = Decimal(rng.randrange(1, 10_000)) / 100
                order_service.add_line(ctx, rng.choice(orders), sku, rng.randrange(1, 5), price)
            elif roll < 0.6 and orders:
                order_service.place(ctx, rng.choice(orders))
            elif roll < 0.7 and orders:
                order_service.mark_paid(ctx, rng.choice(orders))
            elif roll < 0.75 and orders:
                order_service.cancel(ctx, rng.choice(orders), "chaos")
            else:
                user_service.rename(ctx, rng.choice(users), f"name {rng.randrange(10**6)}")
        except DomainError:
            pass  # an invalid transition picked at random: rejected, nothing written
        time.sleep(0.002)


def test_read_models_equal_a_clean_reprojection_after_kill_9_of_relays_and_projector(
    stack_env: dict[str, str],
) -> None:
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "7")))
    settings = settings_of(stack_env)
    services = build_services(settings)  # creates the event stores' tables
    env = {**os.environ, **stack_env}
    processes = {
        "relay-users": Supervised(
            [str(BIN / "strata-relay"), "--context", "users"],
            {**env, "STRATA_RELAY_PORT": str(free_port())},
        ),
        "relay-orders": Supervised(
            [str(BIN / "strata-relay"), "--context", "orders"],
            {**env, "STRATA_RELAY_PORT": str(free_port())},
        ),
        "projector": Supervised(
            [str(BIN / "strata-projector")], {**env, "STRATA_PROJECTOR_PORT": str(free_port())}
        ),
    }
    stop = threading.Event()
    writer = threading.Thread(target=_commands, args=(services, stop, rng))
    writer.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.5, 2.0))
            processes[rng.choice(sorted(processes))].crash_and_restart()
    finally:
        stop.set()
        writer.join()

    heads = {s.name: s.recorder.max_notification_id() or 0 for s in services.all()}
    read_db = PostgresDatabase(stack_env["STRATA_READ_DATABASE_URL"])
    oracle_db = PostgresDatabase(stack_env["ORACLE_DATABASE_URL"])
    redis = Redis.from_url(stack_env["STRATA_REDIS_URL"])
    try:
        live = stack_targets(read_db, redis)
        _wait_until_caught_up(live, heads, seconds=90)
        oracle = stack_targets(oracle_db, redis, layout=RedisLayout(root="rm_oracle"))
        sources = {s.name: envelope_source(s.recorder) for s in services.all()}
        project_log(sources, oracle, until=heads)

        assert sum(p.kills for p in processes.values()) >= 8
        assert min(heads["users"], heads["orders"]) > 100, heads  # the contexts written to
        live_dump = dump_read_models(live)
        assert len(live_dump["users_directory"]["users_directory"]) > 10
        assert live_dump == dump_read_models(oracle)
    finally:
        for process in processes.values():
            process.stop()
        read_db.close()
        oracle_db.close()
        redis.close()
        services.close()


def _wait_until_caught_up(targets: list[Target], heads: dict[str, int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        behind = [
            (t.projection.name, context)
            for t in targets
            for context in t.projection.contexts
            if t.checkpoint(context).position < heads[context]
        ]
        if not behind:
            return
        time.sleep(0.2)
    pytest.fail(f"not caught up after {seconds} s: {behind}")
