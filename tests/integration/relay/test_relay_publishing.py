"""What the relay publishes, on real PostgreSQL and NATS JetStream: every committed event
reaches its context's stream exactly once, in position order, with its headers and envelope,
even under concurrent writers, rollbacks and a slow committer; and what the stream itself
refuses (a re-publish, a publish whose predecessor is missing, deleting or purging).
"""

import asyncio
import random
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from nats.js.api import RetentionPolicy, StorageType
from nats.js.errors import APIError
from psycopg.sql import SQL, Identifier

from contexts.settings import Settings
from domain.errors import ValueTaken
from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.profile import UserProfile
from domain.users.service import UsersService
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
from eventlog.stores import Services
from tests.support.api import unique_email
from tests.support.nats import read_stream
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


def test_every_committed_event_reaches_the_stream_once_in_order_with_headers_and_envelope(
    stack: Settings, services: Services
) -> None:
    user = services.application(UsersService).register(CTX, "Ada", unique_email()).id
    for _ in range(3):
        order = services.application(OrdersService).create_order(CTX, user, "EUR").id
        for line in range(40):
            services.application(OrdersService).add_line(
                CommandContext(), order, f"SKU-{line}", 1, Decimal("1")
            )
    # The poll backstop is 30 s here: only the NOTIFY of a commit can wake the relay in time.
    with RelayThread(stack, "orders", RelayConfig(page_size=50, poll_interval=30)) as relay:
        wait_until_relayed(stack, "orders", store_max(services, "orders"))
        time.sleep(0.3)  # idle, waiting on LISTEN
        started = time.monotonic()
        late = services.application(OrdersService).place(CTX, order)
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


def test_concurrent_writers_rollbacks_and_a_slow_committer_leave_no_gap_behind_the_relay(
    stack: Settings, services: Services
) -> None:
    """Design invariant 3: a tailer never passes a position that commits later."""
    rolled_back: list[int] = []
    slow: list[int] = []
    taken = unique_email()
    services.application(UsersService).register(CTX, "Taken", taken)
    stop = threading.Event()

    def registrations() -> None:
        while not stop.is_set():
            try:
                email = taken if random.random() < 0.3 else unique_email()
                services.application(UsersService).register(CTX, "Writer", email)
            except ValueTaken:
                pass  # rolled back before any position was taken

    def raw_append(hold: float, commit: bool) -> int:
        """An append by hand, under the table lock, held open `hold` seconds."""
        [event] = UserProfile.register("Raw", unique_email()).collect_events()
        stored = services.users.mapper.to_stored_event(event)
        with psycopg.connect(str(stack.database_url("users"))) as conn:
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
