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

import time
import uuid
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import cast

import httpx
import psycopg
import pytest
from redis import Redis

from contexts.registered import REGISTRY
from contexts.settings import CONTEXTS
from eventlog.envelope import envelope_source
from eventlog.jobs import JobStore
from eventlog.replicas import ReplicaStore
from eventlog.stores import Services, build_services
from projections.catchup import project_log
from projections.engine import Target
from projections.model import OpsProjection
from projections.models import all_projections
from projections.targets import stack_targets
from readmodels.keys import RedisLayout
from readmodels.sql import PostgresDatabase
from tests.support.auth import OPERATOR
from tests.support.dumps import dump_read_models
from tests.support.servers import wait_until
from tests.support.stack import PROJECTORS, RELAYS, WRITE_SERVICES, Commands, Stack

OUTAGE_SECONDS = 10.0
RECOVERY_SECONDS = 120.0
NEEDS = {
    "postgres": {*WRITE_SERVICES, *RELAYS, *PROJECTORS, "read-api"},
    "nats": {*RELAYS, *PROJECTORS},
    "redis": {*PROJECTORS, "read-api"},
}
"""The processes that must report not ready while each server is down."""
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
    log_before = len(stack.supervisor_log())  # the shared stack may have been killed before
    commands = Commands(stack)
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
    assert " exited " not in stack.supervisor_log()[log_before:]  # healed by itself, not restarted
    server_errors = {s: n for s, n in commands.answers.items() if s >= 500 and s != 503}
    assert server_errors == {}, commands.answers
    _assert_reads_its_writes(stack)
    _assert_caught_up_and_equal_to_a_clean_rebuild(stack)


def _assert_reads_its_writes(stack: Stack) -> None:
    """The first reads after the outage are answered (no dead pooled connection is drawn): a
    user registered now is read back at its position, from Redis and from PostgreSQL."""
    write = stack.url("write-users")
    read = stack.url("read-api")
    created = httpx.post(
        f"{write}/users",
        json={"name": "After", "email": f"after-{uuid.uuid4().hex}@example.com"},
        headers=OPERATOR,
    )
    assert created.status_code == 201, created.text
    user, position = created.json()["id"], created.json()["position"]
    wait = {"position": position, "wait": 10}
    profile = httpx.get(f"{read}/users/{user}", params=wait, timeout=15, headers=OPERATOR)
    assert profile.status_code == 200, profile.text
    listed = httpx.get(
        f"{read}/users", params={**wait, "name_prefix": "After"}, timeout=15, headers=OPERATOR
    )
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

    def not_ready(name: str) -> bool:
        return not stack.ready(name)

    down = stack.servers.by_name(server)
    down.crash()
    started = time.monotonic()
    try:
        for name in sorted(NEEDS[server]):
            wait_until(partial(not_ready, name), 30, f"{name} reports not ready")
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
        live = stack_targets(read_db, redis)
        heads = _quiet_heads(services, live)

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


def _quiet_heads(services: Services, live: list[Target]) -> dict[str, int]:
    """The stores' heads once nothing more will be written: the fulfilments go on after the
    commands stop (their jobs: commands, provider calls, deadlines), so wait until no job is
    left and the read models have caught up with heads that no longer move."""

    def jobs_left() -> bool:
        return any(
            cast(JobStore, services[context.name].recorder).next_due(worker.kind) is not None
            for context in REGISTRY
            for worker in context.workers
        )

    def heads() -> dict[str, int]:
        return {s.name: s.recorder.max_notification_id() or 0 for s in services.all()}

    settled: dict[str, int] = {}

    def quiet() -> bool:
        nonlocal settled
        before = heads()
        if jobs_left() or not _followers_caught_up(services, before):
            return False
        if not _caught_up(live, before):
            return False
        settled = before
        return heads() == before

    wait_until(quiet, RECOVERY_SECONDS, "the fulfilments ended and the read models caught up")
    return settled


def _followers_caught_up(services: Services, heads: dict[str, int]) -> bool:
    """Every context's replicas and reactions have taken in their upstream's head. Between an
    upstream event and the saga's answer to it (the order marked shipped, then the saga
    completed) no job is left, so the jobs alone do not tell that the fulfilments ended."""
    followed = [
        (context.name, upstream, key)
        for context in REGISTRY
        for upstream, key in [
            *((r.upstream, r.upstream) for r in context.replicas),
            *((r.upstream, r.checkpoint_key) for r in context.reactions),
        ]
    ]
    return all(
        cast(ReplicaStore, services[follower].recorder).replica_checkpoint(key).position
        >= heads[upstream]
        for follower, upstream, key in followed
    )


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
