"""The relay on real PostgreSQL and NATS JetStream: every committed event reaches its context's
stream exactly once, in position order, across restarts, kill -9, failover and rollbacks.

Each test relays into streams of its own namespace on the shared NATS server and deletes them
at the end. Event stores are the session's scratch databases, so a stream also carries the
events other tests wrote before: every check compares the stream with the whole store.
"""

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from nats.js.api import RetentionPolicy, StorageType
from nats.js.errors import APIError
from prometheus_client.parser import text_string_to_metric_families
from psycopg.sql import SQL, Identifier

from contexts.settings import CONTEXTS, Settings
from domain.errors import ValueTaken
from domain.service import CommandContext
from domain.users.profile import UserProfile
from eventlog.envelope import EventEnvelope
from eventlog.jetstream import (
    WRONG_LAST_MSG_ID,
    ContextStream,
    PublishFailed,
    PublishWindow,
    connect,
    context_stream,
    ensure_stream,
)
from eventlog.relay import RelayConfig
from eventlog.relay_publish import relay_headers
from eventlog.stores import Services, build_services
from tests.support.api import unique_email
from tests.support.nats import (
    delete_streams,
    new_namespace,
    read_stream,
    require_nats,
)
from tests.support.postgres import require_postgres, scratch_databases, url_settings
from tests.support.relays import (
    CTX,
    RelayThread,
    assert_exactly_the_store,
    register_users,
    store_envelopes,
    store_max,
    stream_name,
    wait_until_relayed,
)

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def stack(postgres_stores: dict[str, str]) -> Iterator[Settings]:
    """Stack-mode settings whose streams live in a namespace of this test alone."""
    url = require_nats()
    settings = Settings(
        **url_settings(postgres_stores),
        nats_url=url,
        stream_namespace=new_namespace(),
        stream_duplicate_window_seconds=120,
    )
    yield settings
    delete_streams(url, *(context_stream(context, settings).name for context in CONTEXTS))


@pytest.fixture
def services(stack: Settings) -> Iterator[Services]:
    built = build_services(stack)
    yield built
    built.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RelayProcess:
    """`python -m eventlog.relay_main --context <context>` with the test's settings."""

    def __init__(self, settings: Settings, context: str, log_path: Path, **overrides: Any):
        self.port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("STRATA_")}
        values = {
            **url_settings({c: u for c, u in settings.database_urls().items() if u}),
            "nats_url": settings.nats_url,
            "stream_namespace": settings.stream_namespace,
            "stream_duplicate_window_seconds": settings.stream_duplicate_window_seconds,
            "relay_port": self.port,
            "log_level": "info",
            **overrides,
        }
        env.update({f"STRATA_{key.upper()}": str(value) for key, value in values.items()})
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "eventlog.relay_main", "--context", context],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
            )

    def metric(self, name: str) -> float | None:
        """A sample of /metrics, or None while the endpoint does not answer."""
        try:
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=1) as response:
                text = response.read().decode()
        except OSError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        return None

    @property
    def active(self) -> bool:
        return self.metric("strata_relay_active") == 1

    def get(self, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


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
                self._services.users.register(CTX, "Writer", unique_email())
                self.count += 1
                time.sleep(0.002)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            self._error = error


# -- the tests -----------------------------------------------------------------------------------


def test_every_committed_event_reaches_the_stream_once_in_order_with_headers_and_envelope(
    stack: Settings, services: Services
) -> None:
    user = services.users.register(CTX, "Ada", unique_email()).id
    for _ in range(3):
        order = services.orders.create_order(CTX, user, "EUR").id
        for line in range(40):
            services.orders.add_line(CommandContext(), order, f"SKU-{line}", 1, Decimal("1"))
    # The poll backstop is 30 s here: only the NOTIFY of a commit can wake the relay in time.
    with RelayThread(stack, "orders", RelayConfig(page_size=50, poll_interval=30)) as relay:
        wait_until_relayed(stack, "orders", store_max(services, "orders"))
        time.sleep(0.3)  # idle, waiting on LISTEN
        started = time.monotonic()
        late = services.orders.place(CTX, order)
        wait_until_relayed(stack, "orders", late.position, timeout=3)
        woken_in = time.monotonic() - started
        assert relay.sample("strata_relay_active") == 1
        assert relay.sample("strata_relay_lag_events") == 0

    envelopes = store_envelopes(services, "orders")
    messages = read_stream(stack.nats_url, stream_name(stack, "orders"))
    assert_exactly_the_store(messages, services, "orders")
    assert woken_in < 2, f"the relay took {woken_in:.1f} s to see a commit"
    assert relay.sample("strata_relay_events_relayed_total") == len(envelopes)
    assert relay.sample("strata_relay_active") == 0  # stopped: the lock is released
    previous = None
    for message, envelope in zip(messages, envelopes, strict=True):
        assert EventEnvelope.from_json(message.data) == envelope
        assert message.subject == f"{stack.stream_namespace}.{envelope.subject}"
        headers = message.headers
        assert headers["Nats-Msg-Id"] == envelope.message_id == f"orders-{envelope.position}"
        assert headers.get("Nats-Expected-Last-Msg-Id") == previous
        assert headers["Strata-Aggregate-Type"] == envelope.aggregate_type
        assert headers["Strata-Aggregate-Id"] == str(envelope.aggregate_id)
        assert headers["Strata-Aggregate-Version"] == str(envelope.aggregate_version)
        assert headers["Strata-Event-Type"] == envelope.event_type
        assert headers["Strata-Schema-Version"] == str(envelope.schema_version)
        assert headers.get("Strata-Correlation-Id") == envelope.correlation_id
        assert not [h for h in headers if h.endswith("Nats-Msg-Id") and h != "Nats-Msg-Id"]
        previous = envelope.message_id
    assert messages[-1].headers["Strata-Event-Type"] == "Placed"
    assert messages[-1].headers["Strata-Correlation-Id"] == "corr-relay-test"


def test_a_relay_restarted_with_its_checkpoint_reset_publishes_nothing_twice(
    stack: Settings, services: Services
) -> None:
    register_users(services, 30)
    with RelayThread(stack, "users"):
        wait_until_relayed(stack, "users", store_max(services, "users"))
    assert checkpoint(stack, "users") == store_max(services, "users")

    set_checkpoint(stack, "users", 0)
    with RelayThread(stack, "users") as again:
        register_users(services, 1)
        wait_until_relayed(stack, "users", store_max(services, "users"))
    assert again.sample("strata_relay_events_relayed_total") == 1
    assert again.sample("strata_relay_duplicates_total") == 0
    assert_exactly_the_store(
        read_stream(stack.nats_url, stream_name(stack, "users")), services, "users"
    )
    assert checkpoint(stack, "users") == store_max(services, "users")


def test_an_empty_stream_resumes_after_the_checkpoint(stack: Settings, services: Services) -> None:
    register_users(services, 5)
    top = store_max(services, "users")
    tail = [e for e in store_envelopes(services, "users") if e.position > top - 3]
    set_checkpoint(stack, "users", tail[0].position - 1)
    with RelayThread(stack, "users"):
        wait_until_relayed(stack, "users", top)

    messages = read_stream(stack.nats_url, stream_name(stack, "users"))
    assert [m.position for m in messages] == [e.position for e in tail]
    assert "Nats-Expected-Last-Msg-Id" not in messages[0].headers  # nothing before it
    assert messages[1].headers["Nats-Expected-Last-Msg-Id"] == tail[0].message_id


def test_the_stream_drops_re_publishes_and_rejects_a_publish_whose_predecessor_is_missing(
    stack: Settings, services: Services
) -> None:
    register_users(services, 10)
    with RelayThread(stack, "users"):
        wait_until_relayed(stack, "users", store_max(services, "users"))
    stream = context_stream("users", stack)
    before = read_stream(stack.nats_url, stream.name)
    first_ten = store_envelopes(services, "users")[:10]

    acks, rejection = asyncio.run(republish(stack, stream, first_ten))

    assert [ack.duplicate for ack in acks] == [True] * 10  # even with stale expectations
    assert rejection.err_code == WRONG_LAST_MSG_ID
    assert read_stream(stack.nats_url, stream.name) == before


async def republish(
    settings: Settings, stream: ContextStream, envelopes: list[EventEnvelope]
) -> tuple[list[Any], PublishFailed]:
    nc = await connect(settings, name="test-republish")
    window = PublishWindow(nc, max_in_flight=4, ack_timeout=5)
    await window.open()
    try:
        previous = None  # stale for all but the first: the stream's last message is later
        for envelope in envelopes:
            headers = relay_headers(envelope, stream.name, previous)
            await window.publish(stream.subject_of(envelope), envelope.to_json(), headers)
            previous = envelope.message_id
        acks = await window.flush()
        unknown = EventEnvelope(**{**vars(envelopes[0]), "position": 10**12})
        headers = relay_headers(unknown, stream.name, "users-999999999")
        await window.publish(stream.subject_of(unknown), unknown.to_json(), headers)
        with pytest.raises(PublishFailed) as rejected:
            await window.flush()
        return acks, rejected.value
    finally:
        await window.close()
        await nc.close()


def test_kill_9_at_random_moments_under_writes_loses_and_duplicates_nothing(
    stack: Settings, services: Services, tmp_path: Path
) -> None:
    log_path = tmp_path / "relay.log"
    small_pages = {"relay_page_size": 20, "relay_max_in_flight": 8}
    rng = random.Random()
    with Writer(services) as writer:
        for _ in range(4):
            relay = RelayProcess(stack, "users", log_path, **small_pages)
            wait_for(lambda: relay.active, 20, f"relay active\n{relay.log()}")  # noqa: B023
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
    assert log_path.read_text().count("resuming after position") >= 5


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


def test_concurrent_writers_rollbacks_and_a_slow_committer_leave_no_gap_behind_the_relay(
    stack: Settings, services: Services
) -> None:
    """Design invariant 3: a tailer never passes a position that commits later."""
    rolled_back: list[int] = []
    slow: list[int] = []
    taken = unique_email()
    services.users.register(CTX, "Taken", taken)
    stop = threading.Event()

    def registrations() -> None:
        while not stop.is_set():
            try:
                email = taken if random.random() < 0.3 else unique_email()
                services.users.register(CTX, "Writer", email)
            except ValueTaken:
                pass  # rolled back before any position was taken

    def raw_append(hold: float, commit: bool) -> int:
        """An append by hand, under the table lock, held open `hold` seconds."""
        [event] = UserProfile.register("Raw", unique_email()).collect_events()
        stored = services.users.mapper.to_stored_event(event)
        with psycopg.connect(str(stack.users_database_url)) as conn:
            conn.execute(SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(Identifier("users_events")))
            row = conn.execute(
                "INSERT INTO users_events (originator_id, originator_version, topic, state)"
                " VALUES (%s, %s, %s, %s) RETURNING notification_id",
                [stored.originator_id, stored.originator_version, stored.topic, stored.state],
            ).fetchone()
            assert row is not None
            time.sleep(hold)
            if not commit:
                conn.rollback()
        return int(row[0])

    def rollbacks() -> None:
        while not stop.is_set():
            rolled_back.append(raw_append(random.uniform(0, 0.05), commit=False))
            time.sleep(0.02)

    def slow_commits() -> None:
        for _ in range(3):
            time.sleep(0.3)
            slow.append(raw_append(1.0, commit=True))  # others queue behind the lock

    threads = [threading.Thread(target=registrations) for _ in range(3)]
    threads += [threading.Thread(target=rollbacks), threading.Thread(target=slow_commits)]
    with RelayThread(stack, "users", RelayConfig(page_size=25, max_in_flight=8)):
        for thread in threads:
            thread.start()
        threads[-1].join(30)  # the slow committer sets the length of the run
        stop.set()
        for thread in threads:
            thread.join(30)
        wait_until_relayed(stack, "users", store_max(services, "users"))

    messages = read_stream(stack.nats_url, stream_name(stack, "users"))
    assert_exactly_the_store(messages, services, "users")
    published = {m.position for m in messages}
    assert len(slow) == 3 and set(slow) <= published
    assert rolled_back and not set(rolled_back) & published
    holes = set(range(min(published), max(published) + 1)) - published
    assert holes & set(rolled_back), "the relay passed no permanent hole"


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


def test_a_relay_started_before_the_write_side_waits_for_its_tables(stack: Settings) -> None:
    """The relay never creates the store's tables (the write side does); it retries until they
    exist, then relays from the first event."""
    with scratch_databases(require_postgres(), *CONTEXTS) as urls:
        fresh = stack.model_copy(update=url_settings(urls))
        with RelayThread(fresh, "users"):
            time.sleep(1.5)  # a few failed attempts on the missing tables
            services = build_services(fresh)
            try:
                register_users(services, 3)
                wait_until_relayed(fresh, "users", store_max(services, "users"), timeout=10)
                positions = [
                    m.position for m in read_stream(fresh.nats_url, stream_name(fresh, "users"))
                ]
                assert positions == [e.position for e in store_envelopes(services, "users")]
                assert len(positions) == 3
            finally:
                services.close()


def terminate_relay_sessions(settings: Settings, context: str) -> int:
    """Kill the relay's own PostgreSQL session (the one holding the lock) from the server side."""
    with psycopg.connect(str(settings.database_url(context)), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            [f"strata-relay-{context}"],
        ).fetchall()
    return len(rows)


def test_the_context_stream_is_created_once_follows_the_settings_and_keeps_its_messages(
    stack: Settings,
) -> None:
    async def scenario() -> tuple[Any, Any, Any, list[APIError]]:
        nc = await connect(stack, name="test-ensure-stream")
        js = nc.jetstream()
        try:
            first = await ensure_stream(js, "orders", stack)
            again = await ensure_stream(js, "orders", stack)
            longer = stack.model_copy(update={"stream_max_age_days": 30})
            changed = await ensure_stream(js, "orders", longer)
            await js.publish(f"{stack.stream_namespace}.es.orders.Order.Created.p00", b"{}")
            name = stream_name(stack, "orders")
            refused = []
            for attempt in (js.delete_msg(name, 1), js.purge_stream(name)):
                try:
                    await attempt
                except APIError as error:
                    refused.append(error)
            return first.config, again.config, changed.config, refused
        finally:
            await nc.close()

    first, again, changed, refused = asyncio.run(scenario())

    assert first.name == f"{stack.stream_namespace.upper()}_ES_ORDERS"
    assert first.subjects == [f"{stack.stream_namespace}.es.orders.>"]
    assert (first.retention, first.storage) == (RetentionPolicy.LIMITS, StorageType.FILE)
    assert first.max_age == 14 * 86_400
    assert first.max_bytes == -1
    assert first.duplicate_window == 120
    assert first.num_replicas == 1
    assert first.deny_delete and first.deny_purge and not first.allow_rollup_hdrs
    assert again == first
    assert changed.max_age == 30 * 86_400
    assert len(refused) == 2  # no message can be deleted or purged


def test_relay_headers_never_carry_unsafe_ids_and_no_custom_header_ends_in_nats_msg_id() -> None:
    envelope = EventEnvelope(
        position=7,
        context="users",
        aggregate_type="UserProfile",
        aggregate_id=UUID(int=1),
        aggregate_version=2,
        event_type="Renamed",
        schema_version=1,
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        data={"name": "Ada"},
        correlation_id="line\r\nInjected: yes",
        causation_id="cause-1",
    )
    headers = relay_headers(envelope, "ES_USERS", None)
    assert headers["Nats-Msg-Id"] == "users-7"
    assert "Nats-Expected-Last-Msg-Id" not in headers
    assert "Strata-Correlation-Id" not in headers  # only in the body
    assert headers["Strata-Causation-Id"] == "cause-1"
    assert [h for h in headers if h.lower().endswith("nats-msg-id")] == ["Nats-Msg-Id"]
    assert relay_headers(envelope, "ES_USERS", "users-6")["Nats-Expected-Last-Msg-Id"] == "users-6"


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        ([], 2, "Missing option '--context'"),
        (["--context", "billing"], 2, "'billing' is not one of 'users', 'orders'"),
        (["--context", "users"], 1, "the relay needs the stack mode"),
    ],
)
def test_the_command_line_refuses_bad_arguments_and_the_embedded_mode_in_one_line(
    argv: list[str], code: int, fragment: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in ("STRATA_USERS_DATABASE_URL", "STRATA_ORDERS_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "eventlog.relay_main", *argv],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == code
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("strata-relay: ") and fragment in line


def checkpoint(settings: Settings, context: str) -> int:
    with psycopg.connect(str(settings.database_url(context))) as conn:
        row = conn.execute(
            SQL("SELECT position FROM {} WHERE stream = %s").format(
                Identifier(f"{context}_relay_checkpoint")
            ),
            [stream_name(settings, context)],
        ).fetchone()
    return int(row[0]) if row else 0


def set_checkpoint(settings: Settings, context: str, position: int) -> None:
    table = Identifier(f"{context}_relay_checkpoint")
    with psycopg.connect(str(settings.database_url(context))) as conn:
        conn.execute(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (stream text PRIMARY KEY,"
                " position bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
            ).format(table)
        )
        conn.execute(
            SQL(
                "INSERT INTO {} (stream, position) VALUES (%s, %s)"
                " ON CONFLICT (stream) DO UPDATE SET position = excluded.position"
            ).format(table),
            [stream_name(settings, context), position],
        )
