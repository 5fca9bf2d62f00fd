"""Where the relay starts, on real PostgreSQL and NATS JetStream: after its checkpoint, from an
empty stream or with the checkpoint reset (publishing nothing twice), and, started before the
write side, once the store's tables exist.
"""

import time

import psycopg
import pytest
from psycopg.sql import SQL, Identifier

from contexts.settings import CONTEXTS, Settings
from eventlog.stores import Services, build_services
from tests.support.nats import read_stream
from tests.support.postgres import require_postgres, scratch_databases, url_settings
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
