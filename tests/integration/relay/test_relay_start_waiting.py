"""A relay started while its event store or NATS is unreachable serves its endpoints at once
and waits (runtime/opening.py): alive, not ready while PostgreSQL or NATS does not answer, then
publishing once it does; SIGTERM while it waits stops it at once, exit 0. A real process
(`python -m eventlog.relay_main`), its event store behind a proxy that is cut, or at a port
where nothing listens; NATS at a port where a server of the test's own starts later, or none."""

import json
from pathlib import Path

import pytest

from contexts.settings import CONTEXTS, Settings
from eventlog.stores import Services
from tests.support.postgres import url_settings
from tests.support.processes import free_port
from tests.support.proxy import proxy_to_postgres, through
from tests.support.relay_processes import RelayProcess
from tests.support.relays import register_users, store_max, wait_until_relayed
from tests.support.servers import NatsServer, require_server_binaries, wait_until
from tests.support.waiting import assert_waiting, nowhere, stop_promptly

pytestmark = pytest.mark.postgres

CONTEXT = "users"
WAITING = "the users event store is not reachable yet"
WAITING_FOR_NATS = "NATS is not reachable yet"
NATS_DOWN = "NATS is not reachable ("
PAUSES = ["0.5 s", "1 s", "2 s", "4 s"]


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


def test_a_relay_waits_for_nats_then_publishes_with_a_line_per_try(
    stack: Settings, services: Services, tmp_path: Path
) -> None:
    require_server_binaries("nats-server")
    (tmp_path / "nats").mkdir()
    nats = NatsServer(tmp_path / "nats")  # its port is free until it starts
    settings = stack.model_copy(update={"nats_url": nats.url})
    register_users(services, 2)
    relay = RelayProcess(settings, CONTEXT, tmp_path / "relay.log")
    try:
        assert_waiting(f"http://127.0.0.1:{relay.port}", relay.process, WAITING_FOR_NATS)
        wait_until(lambda: len(_nats_down_lines(relay)) >= 2, 30, "a second try failed")
        nats.start()
        wait_until_relayed(settings, CONTEXT, store_max(services, CONTEXT))
        wait_until(lambda: relay.get("/readyz")[0] == 200, 20, "the relay is ready")
    finally:
        assert relay.stop() == 0, relay.log()
        nats.close()
    _assert_a_line_per_try(relay)


def test_sigterm_stops_a_relay_waiting_for_nats_at_once(stack: Settings, tmp_path: Path) -> None:
    settings = stack.model_copy(update={"nats_url": f"nats://127.0.0.1:{free_port()}"})
    relay = RelayProcess(settings, CONTEXT, tmp_path / "relay.log")
    try:
        assert_waiting(f"http://127.0.0.1:{relay.port}", relay.process, WAITING_FOR_NATS)
        assert stop_promptly(relay.process) == 0
    finally:
        relay.stop()
    _assert_a_line_per_try(relay)


def _records(relay: RelayProcess) -> list[dict[str, str]]:
    lines = relay.log_path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _nats_down_lines(relay: RelayProcess) -> list[dict[str, str]]:
    return [record for record in _records(relay) if NATS_DOWN in record["message"]]


def _assert_a_line_per_try(relay: RelayProcess) -> None:
    """Each failed try is one warning, without a traceback, and nats-py's own errors (one per
    server, every second) are not logged; the pauses between tries double."""
    text = relay.log_path.read_text(errors="replace")
    assert "Traceback" not in text, text
    assert "Connect call failed" in text, text
    tries = _nats_down_lines(relay)
    assert all(record["level"] == "warning" for record in tries), tries
    refused = [record for record in _records(relay) if "Connect call failed" in str(record)]
    assert refused == tries, text
    pauses = [record["message"].rsplit("trying again in ", 1)[1] for record in tries]
    assert pauses == [*PAUSES, *["5 s"] * len(pauses)][: len(pauses)], pauses
