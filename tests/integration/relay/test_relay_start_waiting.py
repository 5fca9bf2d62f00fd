"""A relay started while its event store is unreachable serves its endpoints at once and waits
(runtime/opening.py): alive, not ready while PostgreSQL does not answer, then publishing once it
does; SIGTERM while it waits stops it at once, exit 0. A real process (`python -m
eventlog.relay_main`), its event store behind a proxy that is cut, or at a port where nothing
listens."""

from pathlib import Path

import pytest

from contexts.settings import CONTEXTS, Settings
from eventlog.stores import Services
from tests.support.postgres import url_settings
from tests.support.proxy import proxy_to_postgres, through
from tests.support.relay_processes import RelayProcess
from tests.support.relays import register_users, store_max, wait_until_relayed
from tests.support.servers import wait_until
from tests.support.waiting import assert_waiting, nowhere, stop_promptly

pytestmark = pytest.mark.postgres

CONTEXT = "users"
WAITING = "the users event store is not reachable yet"


def test_a_relay_waits_for_its_event_store_then_publishes(
    stack: Settings, services: Services, tmp_path: Path
) -> None:
    register_users(services, 2)
    store = str(stack.database_url(CONTEXT))
    proxy = proxy_to_postgres(store)
    proxy.cut()
    try:
        relay = RelayProcess(
            stack, CONTEXT, tmp_path / "relay.log",
            users_database_url=through(proxy, store), db_connect_timeout=1,
        )  # fmt: skip
        try:
            assert_waiting(f"http://127.0.0.1:{relay.port}", relay.process, WAITING)
            proxy.restore()
            wait_until_relayed(stack, CONTEXT, store_max(services, CONTEXT))
            wait_until(lambda: relay.get("/readyz")[0] == 200, 20, "the relay is ready")
        finally:
            assert relay.stop() == 0, relay.log()
    finally:
        proxy.close()


def test_sigterm_stops_a_relay_waiting_for_its_event_store_at_once(tmp_path: Path) -> None:
    nowhere_settings = Settings(**url_settings({c: nowhere(c) for c in CONTEXTS}))
    relay = RelayProcess(nowhere_settings, CONTEXT, tmp_path / "relay.log", db_connect_timeout=1)
    try:
        assert_waiting(f"http://127.0.0.1:{relay.port}", relay.process, WAITING)
        assert stop_promptly(relay.process) == 0
    finally:
        relay.stop()
