"""Fixtures of the relay tests: stack-mode settings whose streams live in a namespace of the
test's own on the shared NATS server (deleted at the end), and the event stores they name.

Event stores are the session's scratch databases, so a stream also carries the events other
tests wrote before: every check compares the stream with the whole store.
"""

from collections.abc import Iterator

import pytest

from contexts.settings import CONTEXTS, Settings
from eventlog.jetstream import context_stream
from eventlog.stores import Services, build_services
from tests.support.nats import delete_streams, new_namespace, require_nats
from tests.support.postgres import url_settings


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
