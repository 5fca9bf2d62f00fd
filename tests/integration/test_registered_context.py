"""A context declared in the test tree alone (tests/support/notes_context.py) and registered with
`REGISTRY.with_(NOTES)` gets, from its declaration only: a store and a write endpoint, a tailer of
the embedded fan-out that folds its events into its read model, a relay publishing to its own
JetStream stream, the stack projector's consumer into the PostgreSQL read database, its read
endpoint, `replay state` and `replay projections`.
"""

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from contexts.registered import REGISTRY
from embedded.app import create_app as create_embedded_app
from eventlog.jetstream import context_stream
from eventlog.position_tokens import format_token, parse_token
from projections.consumers import ConsumerOptions
from projections.stack import StackProjector
from read_api.app import create_app as create_read_app
from replay.main import app as replay_app
from runtime.settings import CommonSettings, settings_model
from tests.support.auth import OPERATOR
from tests.support.nats import (
    delete_streams,
    last_position,
    new_namespace,
    read_stream,
    require_nats,
)
from tests.support.notes_context import NOTES
from tests.support.postgres import require_postgres, scratch_databases, url_settings
from tests.support.read_models import require_redis, scratch_redis_database
from tests.support.relays import RelayThread
from write_api.app import create_app as create_write_app

WITH_NOTES = REGISTRY.with_(NOTES)
NotesSettings = settings_model(WITH_NOTES.names)


def write_note(client: TestClient, text: str) -> dict[str, Any]:
    answer = client.post("/notes", json={"text": text})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def replay(env: dict[str, str], *args: str, registry: object = WITH_NOTES) -> Any:
    """`replay ARGS`, run on the registry given as its `obj`."""
    return CliRunner().invoke(replay_app, list(args), obj=registry, env=env)


def replay_state(env: dict[str, str], note_id: str, registry: object = WITH_NOTES) -> Any:
    """`replay state notes <id> --version 1 --json`."""
    return replay(env, "state", "notes", note_id, "--version", "1", "--json", registry=registry)


def read_note(client: TestClient, path: str, written: dict[str, Any]) -> dict[str, Any]:
    """The note from its read endpoint, once the read model reflects the write."""
    answer = client.get(path, params={"position": written["position"], "wait": 10})
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Read-Position"] == f"notes:{parse_token(written['position']).value}"
    body: dict[str, Any] = answer.json()
    return body


def test_the_settings_of_the_registry_have_a_url_per_context() -> None:
    urls = {name: f"postgresql://db/{name}" for name in REGISTRY.names}
    settings = NotesSettings(**url_settings(urls), notes_database_url="postgresql://db/n")

    assert settings.mode == "stack"
    assert settings.database_url("notes") == "postgresql://db/n"
    with pytest.raises(ValueError, match="STRATA_NOTES_DATABASE_URL"):
        NotesSettings(**url_settings(urls))


def test_embedded_a_test_context_takes_commands_reaches_the_fanout_and_replays(
    tmp_path: Path,
) -> None:
    settings = NotesSettings(data_dir=tmp_path / "var", group_commit=False)
    app = create_embedded_app(settings, contexts=WITH_NOTES)
    with TestClient(app, headers=OPERATOR) as client:
        written = write_note(client, "  remember the milk ")
        read = read_note(client, f"/read/notes/{written['id']}", written)
        missing = client.get(f"/read/notes/{UUID(int=1)}")
        fanout = client.app.state.fanout  # type: ignore[attr-defined]
        notes = client.app.state.services["notes"]  # type: ignore[attr-defined]
        [envelope] = notes.recorder.select_envelopes("notes", 0, 10)

    assert fanout.contexts == (*REGISTRY.names, "notes")
    assert "notes" in [target.projection.name for target in fanout.targets]
    assert (read["text"], read["version"]) == ("remember the milk", 1)
    assert missing.status_code == 404
    assert (tmp_path / "var" / "notes.sqlite").is_file()
    assert (envelope.context, envelope.aggregate_type) == ("notes", "Note")
    assert written["position"] == format_token("notes", envelope.position, envelope.partition)
    assert envelope.data["text"] == "remember the milk"

    replayed = replay_state({"STRATA_DATA_DIR": str(tmp_path / "var")}, written["id"])
    assert replayed.exit_code == 0, replayed.output
    document = json.loads(replayed.stdout)
    assert (document["context"], document["version"]) == ("notes", 1)
    assert document["state"]["text"] == "remember the milk"

    status = replay({"STRATA_DATA_DIR": str(tmp_path / "var")}, "projections", "--json")
    assert status.exit_code == 0, status.output
    [projection] = [
        p for p in json.loads(status.stdout)["projections"] if p["projection"] == "notes"
    ]
    [lag] = projection["contexts"]
    assert (lag["context"], lag["position"], lag["head"]) == ("notes", envelope.position, 1)


def test_the_registered_contexts_alone_do_not_know_a_test_context(tmp_path: Path) -> None:
    env = {"STRATA_DATA_DIR": str(tmp_path)}
    refused = replay_state(env, "0" * 32, registry=None)
    no_projection = replay(env, "rebuild", "notes", "--dry-run", registry=None)

    assert refused.exit_code == 2
    assert "unknown context 'notes'; use users or orders" in refused.output
    assert no_projection.exit_code == 2
    assert "unknown projection 'notes'" in no_projection.output
    assert "notes" not in [model.name for model in REGISTRY.read_models]


@pytest.fixture
def stack_settings(postgres_stores: dict[str, str]) -> Iterator[CommonSettings]:
    """The stack's stores: the event stores (the notes' of its own), the read database and a
    Redis database of the test's own, streams in a namespace of its own (deleted after)."""
    nats = require_nats()
    with (
        scratch_databases(require_postgres(), "notes", "read") as databases,
        scratch_redis_database(require_redis()) as redis_url,
    ):
        settings = NotesSettings(
            **url_settings(postgres_stores),
            notes_database_url=databases["notes"],
            read_database_url=databases["read"],
            redis_url=redis_url,
            nats_url=nats,
            stream_namespace=new_namespace(),
            group_commit=False,
        )
        yield settings
        delete_streams(nats, *(context_stream(c, settings).name for c in WITH_NOTES.names))


@pytest.mark.postgres
def test_stack_a_test_context_is_relayed_projected_read_and_replayed(
    stack_settings: CommonSettings,
) -> None:
    with TestClient(
        create_write_app(stack_settings, contexts=WITH_NOTES), headers=OPERATOR
    ) as client:
        written = write_note(client, "ship it")

    stream = context_stream("notes", stack_settings)
    with RelayThread(stack_settings, "notes"):
        wait_until_published(stack_settings.nats_url, stream.name, written["position"])
    [message] = read_stream(stack_settings.nats_url, stream.name)
    assert parse_token(written["position"]).value == message.position
    assert message.subject.startswith(f"{stack_settings.stream_namespace}.es.notes.Note.")

    consumers = asyncio.run(project(stack_settings, message.position))
    assert "proj_notes_all:notes:v1" in consumers  # the notes feed, serving notes:v1
    with TestClient(
        create_read_app(stack_settings, contexts=WITH_NOTES), headers=OPERATOR
    ) as client:
        assert read_note(client, f"/notes/{written['id']}", written)["text"] == "ship it"

    env = {v: str(stack_settings.database_url(c)) for c, v in database_variables()}
    replayed = replay_state(env, written["id"])
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["state"]["text"] == "ship it"


async def project(settings: CommonSettings, position: int, timeout: float = 20) -> list[str]:
    """Run the stack's projector of the registry with notes until its notes consumer has
    applied `position`; the names of its consumers."""
    options = ConsumerOptions(batch_size=16, fetch_timeout=0.2, pauses=(0.1,))
    projector = StackProjector(settings, options=options, contexts=WITH_NOTES)
    try:
        assert await projector.lead(asyncio.Event())
        await projector.start()
        [notes] = [runner for runner in projector.runners if runner.context == "notes"]
        async with asyncio.timeout(timeout):
            while notes.checkpoint.position < position:
                await asyncio.sleep(0.05)
        return [runner.name for runner in projector.runners]
    finally:
        await projector.close()


def database_variables() -> list[tuple[str, str]]:
    return [(context.name, context.database_url_variable) for context in WITH_NOTES]


def wait_until_published(url: str, stream: str, token: str, timeout: float = 20) -> None:
    position = parse_token(token).value
    deadline = time.monotonic() + timeout
    while (seen := last_position(url, stream)) < position:
        assert time.monotonic() < deadline, f"stream at {seen} after {timeout} s, not {position}"
        time.sleep(0.1)
