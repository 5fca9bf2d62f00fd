"""Projector workers (`STRATA_PROJECTOR_MODE=partitioned`) as real processes: two workers split
the partitions under a stream of events, a third joins, and one is killed with SIGKILL while
the leases rebalance; `replay rebuild` swaps a PostgreSQL and a Redis model in meanwhile.
Afterwards every partition's checkpoint has reached its last event, and the read models (the
rebuilt ones at their new version) equal one projector's over the whole log: every event
applied exactly once (hobby lists and order totals would show a duplicate), in per-aggregate
order (the last rename wins, hobby lists keep their order). A `strata-read-api` process answers
reads with the partition tokens of the last writes while the killed worker's partitions are
taken over."""

import asyncio
import json
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import nats
import pytest
from redis import Redis

from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.envelope import EventEnvelope, envelope_source
from eventlog.jetstream import ContextStream
from eventlog.position_tokens import format_token
from eventlog.relay_publish import relay_headers
from eventlog.stores import Services, build_services
from readmodels.catalog import ORDERS, USER_PROFILES, USER_STATS
from readmodels.keys import RedisLayout
from readmodels.partition_checkpoints import (
    partition_slot,
    read_all_positions,
    redis_all_positions,
)
from readmodels.sql import PostgresDatabase
from readmodels.versions import active_versions
from tests.support.auth import OPERATOR
from tests.support.dumps import differences, dump_read_models
from tests.support.processes import (
    entry_point,
    free_port,
    holds_within,
    readiness,
    running_service,
    start_projector,
    without_strata_variables,
)
from tests.support.projections import Scenario, project, read_side
from tests.support.settings import settings_of
from tests.support.stack_env import scratch_stack_environment, stack_read_targets

READ_API = entry_point("strata-read-api")
REPLAY = entry_point("replay")
USERS = 120
ROUNDS = 3


@pytest.fixture
def stack() -> Iterator[dict[str, str]]:
    with scratch_stack_environment(
        STRATA_PROJECTOR_MODE="partitioned",
        STRATA_PROJECTOR_REBALANCE_SECONDS="0.3",
        STRATA_PROJECTOR_BATCH_SIZE="32",
        STRATA_LOG_LEVEL="warning",
    ) as environment:
        yield environment


def _worker(stack: dict[str, str], port: int, log: Path) -> subprocess.Popen[str]:
    with log.open("w") as out:
        return start_projector(stack, port, stderr=out)


def _tails(logs: list[Path]) -> str:
    return "\n".join(f"{log.name}: {log.read_text()[-2000:]}" for log in logs)


def _split(ports: list[int]) -> bool:
    """Each worker runs consumers, none all of them (each holds part of the partitions)."""
    consumers = [_consumers(port) for port in ports]
    return all(0 < n < sum(consumers) for n in consumers)


def _consumers(port: int) -> int:
    """The consumers a ready worker runs (one per projection, context and partition held)."""
    status, text = readiness(port)
    return int(json.loads(text)["consumers"]) if status == 200 else 0


def _commands(services: Services, round_: int, people: list[uuid.UUID]) -> None:
    """One round of commands: new users in the first, then renames, hobbies and orders."""
    ctx = CommandContext(correlation_id=f"round-{round_}")
    if round_ == 0:
        tag = uuid.uuid4().hex[:8]
        for n in range(USERS):
            people.append(
                services.application(UsersService).register(ctx, f"User {n}", f"u{n}-{tag}@x.io").id
            )
        return
    for n, user in enumerate(people):
        services.application(UsersService).rename(ctx, user, f"User {n} round {round_}")
        services.application(UsersService).add_hobby(ctx, user, f"Hobby {round_}")
        if n % 4 == round_:
            order = services.application(OrdersService).create_order(ctx, user, "EUR").id
            services.application(OrdersService).add_line(ctx, order, "A", round_, Decimal("2.50"))
            services.application(OrdersService).place(ctx, order)


def _publish(stack: dict[str, str], services: Services, after: dict[str, int]) -> None:
    """Publish what the stores hold after `after` (as the relay would), moving `after` on."""

    async def main() -> None:
        nc = await nats.connect(stack["STRATA_NATS_URL"])
        js = nc.jetstream()
        for context in ("users", "orders"):
            stream = ContextStream(context, stack["STRATA_STREAM_NAMESPACE"])
            for envelope in _envelopes(services, context, after[context]):
                headers = relay_headers(envelope, stream.name, None)
                await js.publish(stream.subject_of(envelope), envelope.to_json(), headers=headers)
                after[context] = envelope.position
        await nc.close()

    asyncio.run(main())


def _envelopes(services: Services, context: str, after: int) -> list[EventEnvelope]:
    return envelope_source(services[context].recorder).select_envelopes(context, after, 100_000)


def _caught_up(stack: dict[str, str], services: Services) -> Callable[[], bool]:
    """Every partition's checkpoint of a SQL and two Redis models (their active versions) is at
    its last event."""
    lasts: dict[tuple[str, int], int] = {}
    for context in ("users", "orders"):
        for envelope in _envelopes(services, context, 0):
            lasts[(context, envelope.partition)] = envelope.position
    read_db = PostgresDatabase(stack["STRATA_READ_DATABASE_URL"])
    redis = Redis.from_url(stack["STRATA_REDIS_URL"], decode_responses=True)

    def check() -> bool:
        with read_db.transaction(write=False) as tx:
            active = {name: version for name, (version, _) in active_versions(tx).items()}
            orders, *documents = (
                model.at(active.get(model.name, 1)) for model in (ORDERS, USER_PROFILES, USER_STATS)
            )
            positions = dict(read_all_positions(tx, [orders]))
        positions.update(redis_all_positions(redis, RedisLayout(), documents))
        models = {"orders": ("orders", "user_stats"), "users": ("user_profiles",)}
        return all(
            positions.get((model, partition_slot(context, p)), 0) >= last
            for (context, p), last in lasts.items()
            for model in models[context]
        )

    return check


def test_workers_split_partitions_survive_kill_and_join_applying_each_event_once(
    stack: dict[str, str], tmp_path: Path
) -> None:
    settings = settings_of(stack)
    services = build_services(settings.model_copy(update={"group_commit": False}))
    ports = [free_port() for _ in range(3)]
    logs = [tmp_path / f"worker{n}.log" for n in range(3)]
    workers = [_worker(stack, ports[0], logs[0]), _worker(stack, ports[1], logs[1])]
    after = {"users": 0, "orders": 0}
    people: list[uuid.UUID] = []
    reading = {k: stack[k] for k in ("STRATA_READ_DATABASE_URL", "STRATA_REDIS_URL")}
    try:
        with running_service(READ_API, reading, "STRATA_READ_API_PORT") as (read_api, _):
            assert holds_within(lambda: all(readiness(p)[0] == 200 for p in ports[:2]), 30)
            _commands(services, 0, people)
            _publish(stack, services, after)
            # The two split the partitions: each runs some of the consumers, neither all.
            assert holds_within(lambda: _split(ports[:2]), 10)
            _commands(services, 1, people)
            workers.append(_worker(stack, ports[2], logs[2]))  # joins: the others give up surplus
            _publish(stack, services, after)
            assert holds_within(lambda: _consumers(ports[2]) > 0, 15)  # it got its share
            for name in ("orders", "user_profiles"):  # PostgreSQL, Redis: swapped under workers
                _rebuild(stack, name)
            workers[0].kill()  # SIGKILL while the leases still move and events flow
            workers[0].wait(timeout=10)
            _commands(services, 2, people)
            _publish(stack, services, after)
            _read_your_writes(read_api, services, people)
        assert holds_within(lambda: all(readiness(p)[0] == 200 for p in ports[1:]), 20)
        assert holds_within(_caught_up(stack, services), 30), _tails(logs)
        with read_side("sqlite", tmp_path, name="expected") as expected:
            project(expected, Scenario(services))
            wanted = dump_read_models(expected.targets)
        with stack_read_targets(stack) as targets:
            live = dump_read_models(targets)
        assert live == wanted, (differences(wanted, live), _tails(logs))
    finally:
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.communicate(timeout=30)
        services.close()


def _rebuild(stack: dict[str, str], projection: str) -> None:
    assert REPLAY
    done = subprocess.run(
        [REPLAY, "rebuild", projection, "--json"],
        env={**without_strata_variables(), **stack},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["swapped"] is True


def _read_your_writes(read_api: str, services: Services, people: list[uuid.UUID]) -> None:
    """Right after the last round, while a killed worker's partitions are taken over: a read
    with the partition token of a user's last rename sees that rename."""
    last = {e.aggregate_id: e for e in _envelopes(services, "users", 0)}
    for n in range(0, USERS, USERS // 8):
        envelope = last[people[n]]
        token = format_token("users", envelope.position, envelope.partition)
        answer = httpx.get(
            f"{read_api}/users/{people[n]}",
            params={"position": token, "wait": 10},
            headers=OPERATOR,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["name"] == f"User {n} round 2"
