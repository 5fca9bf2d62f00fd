"""The relay when it dies or loses its lock, on real PostgreSQL and NATS JetStream: kill -9 at
random moments under writes, a standby taking over from a killed active relay, and a relay
whose lock connection is cut competing for the lock again; the stream ends up holding each of
the store's events once, in order.
"""

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from contexts.settings import Settings
from domain.users.service import UsersService
from eventlog.stores import Services
from tests.support.api import unique_email
from tests.support.nats import read_stream
from tests.support.relay_processes import RelayProcess
from tests.support.relays import (
    CTX,
    RelayThread,
    assert_exactly_the_store,
    register_users,
    store_max,
    stream_name,
    wait_until_relayed,
)

pytestmark = pytest.mark.postgres


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `condition` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - started


class Writer:
    """A thread registering users until stopped."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None
        self.count = 0

    def __enter__(self) -> "Writer":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(15)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._services.application(UsersService).register(CTX, "Writer", unique_email())
                self.count += 1
                time.sleep(0.002)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            self._error = error


RESUMED = "resuming after position"
"""What a relay logs once it has read its checkpoint, before it publishes anything."""


def test_kill_9_at_random_moments_under_writes_loses_and_duplicates_nothing(
    stack: Settings, services: Services, tmp_path: Path
) -> None:
    log_path = tmp_path / "relay.log"
    small_pages = {"relay_page_size": 20, "relay_max_in_flight": 8}
    rng = random.Random()

    def resumed(times: int) -> bool:
        return log_path.read_text().count(RESUMED) >= times

    with Writer(services) as writer:
        for started in range(1, 5):
            relay = RelayProcess(stack, "users", log_path, **small_pages)
            wait_for(
                lambda: relay.active and resumed(started),  # noqa: B023
                20,
                f"relay active and resumed\n{relay.log()}",
            )
            time.sleep(rng.uniform(0.0, 0.2))
            relay.kill()
            time.sleep(rng.uniform(0.1, 0.5))  # a backlog builds up while no relay runs
    assert writer.count > 100
    relay = RelayProcess(stack, "users", log_path, **small_pages)
    try:
        wait_for(lambda: relay.active, 20, f"relay active\n{relay.log()}")
        wait_until_relayed(stack, "users", store_max(services, "users"))
    finally:
        assert relay.stop() == 0, relay.log()  # SIGTERM: a clean stop
    assert_exactly_the_store(
        read_stream(stack.nats_url, stream_name(stack, "users")), services, "users"
    )
    assert resumed(5)


def test_the_standby_takes_over_within_seconds_when_the_active_relay_is_killed(
    stack: Settings, services: Services, tmp_path: Path
) -> None:
    relays = [RelayProcess(stack, "users", tmp_path / f"relay-{n}.log") for n in range(2)]
    try:
        wait_for(lambda: any(r.active for r in relays), 20, "one relay active")
        wait_for(
            lambda: all(r.metric("strata_relay_active") is not None for r in relays), 20, "both up"
        )
        time.sleep(1.5)  # the other has had time to try the lock (every 0.5 s)
        states = sorted(r.metric("strata_relay_active") or 0.0 for r in relays)
        assert states == [0.0, 1.0]
        active, standby = sorted(relays, key=lambda r: not r.active)
        assert active.get("/readyz") == (
            200,
            {"status": "ready", "context": "users", "active": True},
        )
        assert standby.get("/readyz")[1]["active"] is False
        assert standby.get("/healthz") == (200, {"status": "ok"})
        register_users(services, 20)
        wait_until_relayed(stack, "users", store_max(services, "users"))
        assert standby.metric("strata_relay_events_relayed_total") == 0

        with Writer(services):
            time.sleep(0.3)
            active.kill()
            took = wait_for(lambda: standby.active, 10, "standby takes over")
            time.sleep(0.3)
        wait_until_relayed(stack, "users", store_max(services, "users"), timeout=10)
        assert took < 5
        assert (standby.metric("strata_relay_events_relayed_total") or 0) > 0
    finally:
        for relay in relays:
            relay.stop()
    assert_exactly_the_store(
        read_stream(stack.nats_url, stream_name(stack, "users")), services, "users"
    )


def test_a_relay_that_loses_its_lock_connection_stops_and_competes_for_the_lock_again(
    stack: Settings, services: Services
) -> None:
    with RelayThread(stack, "users") as relay:
        register_users(services, 5)
        wait_until_relayed(stack, "users", store_max(services, "users"))
        assert terminate_relay_sessions(stack, "users") == 1

        wait_for(lambda: relay.sample("strata_relay_active") == 0, 5, "relay stops publishing")
        wait_for(lambda: relay.sample("strata_relay_active") == 1, 10, "relay holds the lock again")
        register_users(services, 5)
        wait_until_relayed(stack, "users", store_max(services, "users"))
    assert_exactly_the_store(
        read_stream(stack.nats_url, stream_name(stack, "users")), services, "users"
    )


def terminate_relay_sessions(settings: Settings, context: str) -> int:
    """Kill the relay's own PostgreSQL session (the one holding the lock) from the server side."""
    with psycopg.connect(str(settings.database_url(context)), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            [f"strata-relay-{context}"],
        ).fetchall()
    return len(rows)
