"""The read API on a streaming replica of the read database (`STRATA_READ_REPLICA_URL`): its
read-your-writes waits read the replica's checkpoints, never the primary's; a replica that lags
or is down gets clear answers; /readyz and /metrics say how far behind it is.

The read models are written on the primary by hand, as a projector writes them
(`tests.support.read_models`); the replica is a real one (`tests.support.replica`).
"""

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from contexts.settings import Settings
from read_api.app import create_app
from read_api.stores.replica import ReplicaProbe, ReplicaStatus
from readmodels.catalog import USERS_DIRECTORY
from readmodels.sql import PostgresDatabase
from tests.support.api import assert_problem
from tests.support.auth import OPERATOR
from tests.support.read_models import ReadModelWriter, require_redis, scratch_redis_database
from tests.support.replica import ReplicatedPostgres, StreamingReplica
from tests.support.servers import wait_until

CAUGHT_UP = ReplicaStatus(in_recovery=True, replay_paused=False, lag_seconds=0.0, lag_bytes=0)


@pytest.fixture
def settings(replicated: ReplicatedPostgres) -> Iterator[Settings]:
    """A read database on the primary, read through its replica; Redis for the other models."""
    name = f"strata_read_{uuid.uuid4().hex[:8]}"
    replicated.primary.create_databases(name)
    with scratch_redis_database(require_redis()) as redis_url:
        yield Settings(
            read_database_url=replicated.primary.url(name),
            read_replica_url=replicated.replica.url(name),
            redis_url=redis_url,
            db_connect_timeout=1,
        )


@pytest.fixture
def write(settings: Settings) -> Iterator[ReadModelWriter]:
    assert settings.read_database_url
    assert settings.redis_url
    writer = ReadModelWriter(
        PostgresDatabase(settings.read_database_url),
        redis.Redis.from_url(settings.redis_url, decode_responses=True),
    )
    yield writer
    writer.close()


@contextmanager
def replay_paused(replica: StreamingReplica) -> Iterator[None]:
    """Replay on the replica paused, once it has replayed what the primary has (the scratch
    database, its tables); resumed after, whatever happens."""
    replica.catch_up()
    replica.pause_replay()
    try:
        yield
    finally:
        replica.resume_replay()


def listed(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [entry["name"] for entry in response.json()["items"]]


def test_a_replica_says_how_far_behind_its_replay_is(replicated: ReplicatedPostgres) -> None:
    primary, replica = replicated.primary, replicated.replica
    table = f"t_{uuid.uuid4().hex[:8]}"
    on_replica = PostgresDatabase(replica.url(), read_only=True)
    on_primary = PostgresDatabase(primary.url(), read_only=True)
    with psycopg.connect(primary.url(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (n int)")
    try:
        replica.catch_up()  # a commit replayed: the lag has a replay time to count from
        wait_until(lambda: ReplicaProbe(on_replica).status() == CAUGHT_UP, 10, "caught up")
        assert ReplicaProbe(on_primary).status() == ReplicaStatus(False, False, 0.0, 0)
        replica.pause_replay()
        try:
            with psycopg.connect(primary.url(), autocommit=True) as conn:
                conn.execute(f"INSERT INTO {table} VALUES (1)")
            wait_until(lambda: ReplicaProbe(on_replica).status().lag_bytes > 0, 10, "received")
            behind = ReplicaProbe(on_replica).status()
            assert behind.replay_paused
            assert behind.lag_seconds > 0
            assert "replay paused" in behind.describe()
            with on_replica.transaction(write=False) as tx:
                assert tx.query(f"SELECT n FROM {table}") == []
        finally:
            replica.resume_replay()
        replica.catch_up()
        wait_until(lambda: ReplicaProbe(on_replica).status() == CAUGHT_UP, 10, "caught up")
        with on_replica.transaction(write=False) as tx:
            assert tx.query(f"SELECT n FROM {table}") == [(1,)]
    finally:
        on_replica.close()
        on_primary.close()


def test_a_read_waits_for_the_replicas_checkpoint_not_the_primarys(
    replicated: ReplicatedPostgres, settings: Settings, write: ReadModelWriter
) -> None:
    write.directory_entry(uuid.uuid4(), "Ada")
    write.checkpoint(USERS_DIRECTORY, "users", 1)
    with TestClient(create_app(settings), headers=OPERATOR) as client:
        first = client.get("/users", params={"position": "users:1", "wait": 10})
        assert listed(first) == ["Ada"]  # read-your-writes on the replica
        assert first.headers["X-Read-Position"] == "users:1"

        with replay_paused(replicated.replica):
            write.directory_entry(uuid.uuid4(), "Bea")
            write.checkpoint(USERS_DIRECTORY, "users", 2)  # the primary is at users:2
            late = client.get("/users", params={"position": "users:2", "wait": 0.5})
            assert_problem(late, 503, "users:2", "after waiting 0.5 s", "read replica replays")
            assert "replay paused" in late.json()["detail"]
            assert late.headers["Retry-After"] == "1"
            assert late.headers["X-Read-Position"] == "users:1"
            assert listed(client.get("/users")) == ["Ada"]  # no position: what the replica has

            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(
                    client.get, "/users", params={"position": "users:2", "wait": 10}
                )
                wait_until(lambda: "strata_read_waiting 1.0" in metrics(client), 10, "it waits")
                replicated.replica.resume_replay()
                answer = waiting.result(timeout=15)
    assert listed(answer) == ["Ada", "Bea"]
    assert answer.headers["X-Read-Position"] == "users:2"


def test_a_read_waits_for_a_replica_that_has_not_replayed_the_read_models_tables_yet(
    replicated: ReplicatedPostgres, settings: Settings
) -> None:
    """The projector's first statements reached the primary, not yet the replica: its missing
    checkpoint tables mean "not reached", and the read waits, instead of a 503 as if the
    store were down."""
    assert settings.read_database_url and settings.redis_url
    with replay_paused(replicated.replica), TestClient(create_app(settings)) as client:
        write = ReadModelWriter(
            PostgresDatabase(settings.read_database_url),
            redis.Redis.from_url(settings.redis_url, decode_responses=True),
        )
        try:
            write.directory_entry(uuid.uuid4(), "Ada")
            write.checkpoint(USERS_DIRECTORY, "users", 1)
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(
                    client.get,
                    "/users",
                    params={"position": "users:1", "wait": 10},
                    headers=OPERATOR,
                )
                wait_until(lambda: "strata_read_waiting 1.0" in metrics(client), 10, "it waits")
                replicated.replica.resume_replay()
                answer = waiting.result(timeout=15)
        finally:
            write.close()
    assert listed(answer) == ["Ada"]


def metrics(client: TestClient) -> str:
    response: httpx.Response = client.get("/metrics")
    assert response.status_code == 200
    return response.text


def test_readyz_and_metrics_report_the_replicas_lag(
    replicated: ReplicatedPostgres, settings: Settings, write: ReadModelWriter
) -> None:
    with replay_paused(replicated.replica), TestClient(create_app(settings)) as client:
        write.checkpoint(USERS_DIRECTORY, "users", 1)  # received, not replayed
        wait_until(lambda: replica_of(client.get("/readyz"))["lag_bytes"] > 0, 10, "received")
        replica = replica_of(client.get("/readyz"))
        assert replica["in_recovery"] is True
        assert replica["replay_paused"] is True
        text = metrics(client)
        assert "strata_read_replica_up 1.0" in text
        assert "strata_read_replica_replay_paused 1.0" in text
        assert "strata_read_replica_lag_bytes 0.0" not in text

        strict = settings.model_copy(update={"read_replica_max_lag_seconds": 0.1})
        with TestClient(create_app(strict)) as lagging:
            wait_until(lambda: lagging.get("/readyz").status_code == 503, 10, "not ready")
            assert_problem(lagging.get("/readyz"), 503, "replica: replays", "the limit is 0.1 s")


def replica_of(ready: Any) -> dict[str, Any]:
    assert ready.status_code == 200, ready.text
    replica: dict[str, Any] = ready.json()["replica"]
    return replica


def test_a_replica_that_is_down_gets_503s_and_is_reported_down(
    replicated: ReplicatedPostgres, settings: Settings, write: ReadModelWriter
) -> None:
    replicated.replica.catch_up()
    replicated.replica.crash()
    try:
        with TestClient(create_app(settings), headers=OPERATOR) as client:
            assert_problem(client.get("/users"), 503)
            assert_problem(client.get("/readyz"), 503, "relational")
            assert "strata_read_replica_up 0.0" in metrics(client)
    finally:
        replicated.replica.start()
