"""Overload, issue 11 item 7: a projector (or a worker of the partitioned mode) held back falls
behind; its lag, in events and in seconds (the age of the oldest event not applied), grows in
its metrics and in `replay projections`, and returns to 0 once it catches up.

The projector is held back as a slow database would: a transaction of the test holds the
checkpoints locked (`rm_checkpoints`, a worker's `rm_partition_checkpoints`), so the
PostgreSQL read models cannot commit their batches.
"""

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from contexts.registered import REGISTRY
from contexts.settings import Settings
from eventlog.envelope import envelope_source
from eventlog.stores import Services, build_services
from projections import stack as projector_stack
from readmodels.catalog import USERS_DIRECTORY
from readmodels.partition_checkpoints import partition_slot, read_all_positions
from readmodels.sql import PostgresDatabase
from replay.main import app as replay_app
from tests.support.projector_threads import ProjectorThread, stack_settings, wait_for
from tests.support.relays import RelayThread, register_users, store_max, wait_until_relayed

DIRECTORY = {"projection": "users_directory", "version": "1", "context": "users"}
DATABASE_VARIABLES = [(c.name, c.database_url_variable) for c in REGISTRY]
FEED = {"feed": "proj_users_all", "context": "users"}


@pytest.fixture
def settings() -> Iterator[Settings]:
    with stack_settings() as built:
        yield built


class LagThread(ProjectorThread):
    def lag(self) -> tuple[float | None, float | None]:
        """users_directory's lag in the users context: events, seconds."""
        return (
            self.sample("strata_projection_lag_events", DIRECTORY),
            self.sample("strata_projection_lag_seconds", DIRECTORY),
        )


def listed_directory(settings: Settings) -> dict[str, Any]:
    """`replay projections --json`: users_directory's lag in the users context."""
    env = {
        **{variable: str(settings.database_url(c)) for c, variable in DATABASE_VARIABLES},
        "STRATA_READ_DATABASE_URL": str(settings.read_database_url),
        "STRATA_REDIS_URL": str(settings.redis_url),
    }
    result = CliRunner().invoke(replay_app, ["projections", "--json"], env=env)
    assert result.exit_code == 0, result.output
    [directory] = [
        p for p in json.loads(result.stdout)["projections"] if p["projection"] == "users_directory"
    ]
    [users] = directory["contexts"]
    return dict(users)


def directory_position(read_db: PostgresDatabase, partition: int) -> int:
    """How far users_directory has applied a partition of the users context, in either
    projector mode."""
    with read_db.transaction(write=False) as tx:
        positions = read_all_positions(tx, [USERS_DIRECTORY])
    return positions.get(("users_directory", partition_slot("users", partition)), 0)


@dataclass(frozen=True)
class HeldBack:
    applied: int
    """The users' position the projector had applied when held back."""
    head: int
    since: float
    """`time.time()` when it was held back."""


@contextmanager
def held_back(
    settings: Settings, services: Services, running: LagThread, table: str
) -> Iterator[HeldBack]:
    """Once caught up, hold `table` locked while 3 users register; the block runs once the lag
    counts them, then the lock goes and the projector catches up again."""
    lag = running.lag
    applied = store_max(services, "users")
    [first] = envelope_source(services.users.recorder).select_envelopes("users", 0, 2)
    # The metrics read (0, 0) before the first user is even relayed: wait for it to be applied.
    read_db = PostgresDatabase(str(settings.read_database_url))
    try:
        wait_for(
            lambda: directory_position(read_db, first.partition) == applied,
            "the first user applied",
        )
    finally:
        read_db.close()
    wait_for(lambda: lag() == (0, 0), "caught up with the first user")
    with psycopg.connect(str(settings.read_database_url)) as held:
        held.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(sql.Identifier(table)))
        since = time.time()
        register_users(services, 3)
        head = store_max(services, "users")
        wait_until_relayed(settings, "users", head)
        wait_for(lambda: lag()[0] == head - applied, "the lag counts the new events")
        yield HeldBack(applied, head, since)
        held.rollback()
    wait_for(lambda: lag() == (0, 0), "caught up again")


@pytest.mark.postgres
def test_lag_grows_while_the_projector_is_held_back_and_returns_to_zero_after(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projector_stack, "WATCH_INTERVAL", 0.1)
    services: Services = build_services(settings)
    register_users(services, 1)
    with RelayThread(settings, "users"), LagThread(settings, "lagtest") as running:
        lag = running.lag
        with held_back(settings, services, running, "rm_checkpoints") as behind_by:
            applied, head, before = behind_by.applied, behind_by.head, behind_by.since
            first_seconds = lag()[1]
            assert first_seconds is not None
            wait_for(lambda: (lag()[1] or 0) > first_seconds + 0.3, "the lag in seconds grows")
            seconds, since_before = lag()[1], time.time() - before
            # the age of the first event not applied, not of the last one applied (older)
            assert seconds is not None and 0.3 < seconds <= since_before
            assert (running.sample("strata_projection_feed_lag_events", FEED) or 0) >= 3
            assert (running.sample("strata_projection_feed_lag_seconds", FEED) or 0) >= seconds

            behind = listed_directory(settings)
            assert (behind["position"], behind["head"]) == (applied, head)
            assert behind["lag_events"] == head - applied
            assert 0.3 < behind["lag_seconds"] <= time.time() - before

        assert running.sample("strata_projection_feed_lag_events", FEED) == 0
        caught_up = listed_directory(settings)
        assert (caught_up["lag_events"], caught_up["lag_seconds"]) == (0, 0)


@pytest.mark.postgres
def test_a_held_back_worker_reports_its_lag_per_partition_and_returns_to_zero(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker of the partitioned mode (projections/workers.py), held back by a lock on
    `rm_partition_checkpoints`: per projection and per partition feed."""
    monkeypatch.setattr(projector_stack, "WATCH_INTERVAL", 0.1)
    settings = settings.model_copy(
        update={"projector_mode": "partitioned", "projector_rebalance_seconds": 0.2}
    )
    services: Services = build_services(settings)
    register_users(services, 1)
    with RelayThread(settings, "users"), LagThread(settings, "lagtest") as running:
        lag = running.lag
        with held_back(settings, services, running, "rm_partition_checkpoints") as behind_by:
            wait_for(lambda: (lag()[1] or 0) > 0.3, "the lag in seconds grows")
            assert (lag()[1] or 0) <= time.time() - behind_by.since
            feeds = [
                sample.value
                for metric in running.projector.metrics.registry.collect()
                if metric.name == "strata_projection_feed_lag_events"
                for sample in metric.samples
                if sample.labels["context"] == "users"
            ]
            assert sum(feeds) == behind_by.head - behind_by.applied  # one feed per partition
