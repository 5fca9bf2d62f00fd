"""Fixtures shared by the integration tests."""

from collections.abc import Iterator

import pytest

from contexts.settings import CONTEXTS
from eventlog.jetstream import ContextStream
from tests.support.nats import delete_streams, new_namespace, require_nats


@pytest.fixture
def streams() -> Iterator[dict[str, ContextStream]]:
    """One stream per registered context, in a namespace of the test's own; deleted after."""
    url = require_nats()
    namespace = new_namespace()
    made = {context: ContextStream(context, namespace) for context in CONTEXTS}
    yield made
    delete_streams(url, *(stream.name for stream in made.values()))
