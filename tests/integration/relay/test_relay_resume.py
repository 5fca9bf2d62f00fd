"""Where the relay starts, on real PostgreSQL and NATS JetStream: after its checkpoint, from an
empty stream or with the checkpoint reset (publishing nothing twice), started before the write
side, once the store's tables exist; and nowhere while the stream does not continue its store.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from nats.js import JetStreamContext
from psycopg.sql import SQL, Identifier

from contexts.settings import CONTEXTS, Settings
from eventlog.jetstream import context_stream, ensure_stream
from eventlog.stores import Services, build_services
from tests.support.nats import delete_streams, read_stream, with_js
from tests.support.postgres import require_postgres, scratch_databases, url_settings
from tests.support.projector_threads import wait_for
from tests.support.relay_processes import RelayProcess
from tests.support.relays import (
    RelayThread,
    assert_exactly_the_store,
    register_users,
    store_envelopes,
    store_max,
    stream_name,
    wait_until_relayed,
)

pytestmark = pytest.mark.postgres


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


def test_a_relay_resuming_from_the_stream_brings_its_checkpoint_up_to_the_stream(
    stack: Settings, services: Services
) -> None:
    """With nothing new to publish, the checkpoint left behind (a relay killed before it saved
    its last page's) still reaches the stream's tip: were the stream to age out, the relay
    would otherwise publish again what it holds, past the duplicate window."""
    register_users(services, 3)
    with RelayThread(stack, "users"):
        wait_until_relayed(stack, "users", store_max(services, "users"))
    set_checkpoint(stack, "users", 0)

    with RelayThread(stack, "users"):
        top = store_max(services, "users")
        wait_for(lambda: checkpoint(stack, "users") == top, "the checkpoint at the stream's tip")


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


@pytest.mark.parametrize("events_of_the_other_store", [2, 5], ids=["behind", "other-events"])
def test_a_relay_whose_stream_follows_another_store_halts_until_a_person_resolves_it(
    stack: Settings, tmp_path: Path, events_of_the_other_store: int
) -> None:
    """A stream relayed from one store (3 events), then a relay given another store: one
    holding no event at the stream's tip, or another event there. It publishes nothing and says
    why; once the stream is deleted and the relay restarted, it publishes its own store."""
    with stores_of_their_own(stack) as first, stores_of_their_own(stack) as second:
        register_users(first.services, 3)
        with RelayThread(first.settings, "users"):
            wait_until_relayed(stack, "users", 3)
        register_users(second.services, events_of_the_other_store)
        relay = RelayProcess(second.settings, "users", tmp_path / "relay.log")
        try:
            wait_for(lambda: relay.metric("strata_relay_halted") == 1, "halted")
            status, problem = relay.get("/readyz")
            assert status == 503
            assert "publishing halted" in problem["detail"]
            assert "the stream follows another store" in problem["detail"]
            time.sleep(1)  # long enough to publish, were it not halted
            assert relay.process.poll() is None
            assert relay.metric("strata_relay_events_relayed_total") == 0
            assert_exactly_the_store(
                read_stream(stack.nats_url, stream_name(stack, "users")), first.services, "users"
            )
            assert relay.log().count("publishing halted") == 1  # logged once, not per look

            assert relay.stop() == 0
            delete_streams(stack.nats_url, stream_name(stack, "users"))
            relay = RelayProcess(second.settings, "users", tmp_path / "relay.log")
            wait_until_relayed(stack, "users", events_of_the_other_store)
            assert relay.get("/readyz")[0] == 200
            assert relay.metric("strata_relay_halted") == 0
            assert_exactly_the_store(
                read_stream(stack.nats_url, stream_name(stack, "users")), second.services, "users"
            )
        finally:
            relay.stop()


def test_a_message_no_relay_wrote_halts_the_relay(stack: Settings, services: Services) -> None:
    stream = context_stream("users", stack)

    async def publish_foreign(js: JetStreamContext) -> None:
        await ensure_stream(js, "users", stack)
        await js.publish(f"{stream.subjects[:-1]}Someone.Wrote.p00", b"not an event")

    with_js(stack.nats_url, publish_foreign)
    with RelayThread(stack, "users") as relay:
        wait_for(lambda: relay.sample("strata_relay_halted") == 1, "halted")
        register_users(services, 1)
        time.sleep(1)
        assert relay.sample("strata_relay_events_relayed_total") == 0
    assert len(read_stream(stack.nats_url, stream.name)) == 1


class OwnStores:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services = build_services(settings)


@contextmanager
def stores_of_their_own(stack: Settings) -> Iterator[OwnStores]:
    """Event stores in databases of their own, with the stack's streams."""
    with scratch_databases(require_postgres(), *CONTEXTS) as urls:
        stores = OwnStores(stack.model_copy(update=url_settings(urls)))
        try:
            yield stores
        finally:
            stores.services.close()


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
