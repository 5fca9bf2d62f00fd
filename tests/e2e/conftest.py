"""One stack of real processes for the e2e tests that need it (tests/support/stack.py)."""

from collections.abc import Iterator

import pytest

from tests.support.auth import JwksServer
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, trusted_identity: JwksServer
) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack"), trusted_identity) as running:
        yield running
