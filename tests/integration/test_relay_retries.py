"""The relay while no stream answers its publishes, on real PostgreSQL and NATS JetStream: it
sends the page again with the same message ids until a stream does (nats-py does not retry a
publish that found no stream leader, as during the few seconds of an election), and the stream
ends up holding each of the store's events once, in order.

Two ways to have no stream answer: the stream stops listening on the relay's subjects (every
publish gets "no responders" at once, as when the stream has no leader), and the NATS server
is killed and started again on its data (publishes get no ack in time).
"""

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contexts.settings import CONTEXTS, Settings
from eventlog.jetstream import connect, context_stream, stream_config
from eventlog.relay import RelayConfig
from eventlog.stores import build_services
from tests.support.nats import delete_streams, new_namespace, read_stream, require_nats
from tests.support.postgres import url_settings
from tests.support.relays import (
    RelayThread,
    assert_exactly_the_store,
    register_users,
    store_max,
    stream_name,
    wait_until_relayed,
)
from tests.support.servers import NatsServer, require_server_binaries, wait_until

pytestmark = pytest.mark.postgres

QUICK_RETRIES = RelayConfig(
    page_size=100, max_in_flight=32, ack_timeout=1.0, publish_retry_pauses=(0.1, 0.2, 0.5)
)
RETRIED = "strata_relay_publish_retries_total"
RESYNCED = "strata_relay_resyncs_total"
LAG = "strata_relay_lag_events"


@pytest.fixture
def shared_nats(postgres_stores: dict[str, str]) -> Iterator[Settings]:
    """Stack-mode settings on the shared NATS server, in a namespace of this test alone."""
    url = require_nats()
    settings = Settings(
        **url_settings(postgres_stores), nats_url=url, stream_namespace=new_namespace()
    )
    yield settings
    delete_streams(url, *(context_stream(context, settings).name for context in CONTEXTS))


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A NATS server of this test alone, which it may kill and start again."""
    require_server_binaries()
    server = NatsServer(tmp_path)
    server.start()
    yield server
    server.close()


def set_subjects(settings: Settings, context: str, subjects: list[str] | None) -> None:
    """Have the context's stream listen on other subjects, or (None) on its own again."""

    async def update() -> None:
        nc = await connect(settings, name="test-relay-retries")
        try:
            config = stream_config(context_stream(context, settings), settings)
            if subjects is not None:
                config = dataclasses.replace(config, subjects=subjects)
            await nc.jetstream().update_stream(config)
        finally:
            await nc.close()

    asyncio.run(update())


def test_while_the_stream_has_no_responders_the_relay_sends_the_same_page_again_until_it_answers(
    shared_nats: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventlog.relay_publish")
    services = build_services(shared_nats)
    try:
        with RelayThread(shared_nats, "users", QUICK_RETRIES) as relay:
            register_users(services, 3)
            wait_until_relayed(shared_nats, "users", store_max(services, "users"))
            set_subjects(shared_nats, "users", [f"{shared_nats.stream_namespace}.parked.>"])
            register_users(services, 5)
            wait_until(lambda: relay.sample(RETRIED) >= 3, 10, "three retries")
            set_subjects(shared_nats, "users", None)
            wait_until_relayed(shared_nats, "users", store_max(services, "users"))
            assert relay.sample(RESYNCED) == 0  # the same page again, not a re-read of the stream
        messages = read_stream(shared_nats.nats_url, stream_name(shared_nats, "users"))
        assert_exactly_the_store(messages, services, "users")
    finally:
        services.close()
    retries = [r.getMessage() for r in caplog.records if "sending the page again" in r.message]
    assert len(retries) >= 3
    assert "no stream answered" in retries[0]


def test_across_a_nats_server_restart_the_relay_sends_the_same_page_again_and_stays_in_order(
    own_nats: NatsServer, postgres_stores: dict[str, str]
) -> None:
    settings = Settings(**url_settings(postgres_stores), nats_url=own_nats.url)
    services = build_services(settings)
    try:
        with RelayThread(settings, "users", QUICK_RETRIES) as relay:
            register_users(services, 3)
            wait_until_relayed(settings, "users", store_max(services, "users"))
            own_nats.crash()
            register_users(services, 5)
            wait_until(lambda: relay.sample(RETRIED) >= 1, 10, "an ack timed out: a retry")
            wait_until(lambda: relay.sample(LAG) == 5, 10, "the lag while NATS is down")
            own_nats.start()
            register_users(services, 2)
            wait_until_relayed(settings, "users", store_max(services, "users"))
        messages = read_stream(settings.nats_url, stream_name(settings, "users"))
        assert_exactly_the_store(messages, services, "users")
    finally:
        services.close()


def test_after_a_restart_that_forgot_the_last_message_id_the_relay_goes_on_publishing(
    own_nats: NatsServer, postgres_stores: dict[str, str]
) -> None:
    """A server restarted once its last message is older than the duplicate window no longer
    knows that message's id (nats-server 2.9 rebuilds it only from messages inside the window),
    so a publish expecting the id is refused; the relay's first publish after a resume expects
    the last sequence instead, which the server keeps. A 2 s window stands for the default 5
    minutes: a context idle for a night."""
    settings = Settings(
        **url_settings(postgres_stores),
        nats_url=own_nats.url,
        stream_namespace=new_namespace(),  # a relay checkpoint of its own
        stream_duplicate_window_seconds=2,
    )
    services = build_services(settings)
    try:
        with RelayThread(settings, "users", QUICK_RETRIES) as relay:
            register_users(services, 3)
            wait_until_relayed(settings, "users", store_max(services, "users"))
            time.sleep(3)
            own_nats.crash()
            own_nats.start()
            register_users(services, 2)
            wait_until_relayed(settings, "users", store_max(services, "users"))
            assert relay.sample(RESYNCED) <= 2  # no busy loop of refused publishes
        messages = read_stream(settings.nats_url, stream_name(settings, "users"))
        assert_exactly_the_store(messages, services, "users")
    finally:
        services.close()
