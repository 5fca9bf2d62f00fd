"""Fixtures shared by the integration tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from contexts.settings import CONTEXTS, Settings
from eventlog.jetstream import ContextStream
from eventlog.stores import Services, build_services
from tests.support.nats import delete_streams, new_namespace, require_nats
from tests.support.projections import ReadSide, Scenario, event_stores, read_side, run_scenario
from tests.support.replica import ReplicatedPostgres, replicated_postgres


@pytest.fixture
def streams() -> Iterator[dict[str, ContextStream]]:
    """One stream per registered context, in a namespace of the test's own; deleted after."""
    url = require_nats()
    namespace = new_namespace()
    made = {context: ContextStream(context, namespace) for context in CONTEXTS}
    yield made
    delete_streams(url, *(stream.name for stream in made.values()))


@pytest.fixture
def stores(settings: Settings) -> Iterator[Services]:
    """The event stores of every registered context, in the storage mode of `settings`,
    committing each unit alone."""
    built = build_services(settings.model_copy(update={"group_commit": False}))
    yield built
    built.close()


@pytest.fixture(scope="session")
def replicated() -> Iterator[ReplicatedPostgres]:
    """A PostgreSQL primary of the session's own and its streaming replica."""
    with replicated_postgres() as pair:
        yield pair


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    """The projection scenario's commands, run on event stores of the test's own."""
    with event_stores(tmp_path / "stores") as services:
        yield run_scenario(services)


@pytest.fixture
def side(tmp_path: Path) -> Iterator[ReadSide]:
    """The stack's read side (PostgreSQL and Redis) on scratch stores; a module that tries
    every kind of read side overrides it with its own."""
    with read_side("stack", tmp_path) as built:
        yield built
