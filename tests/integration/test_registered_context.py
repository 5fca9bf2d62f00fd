"""A context declared in the test tree alone (tests/support/notes_context.py) and registered with
`REGISTRY.with_(NOTES)` gets, from its declaration only: a store and a write endpoint, a tailer of
the embedded fan-out, a relay publishing to its own JetStream stream, and `replay state`.

The notes context has no projection: projections are listed by `projections.models`, not by the
registry (see the README, "Adding a context"), so the embedded proof stops at the tailer's log.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from contexts.registered import REGISTRY
from embedded.app import create_app as create_embedded_app
from eventlog.jetstream import context_stream
from replay.main import app as replay_app
from runtime.settings import CommonSettings, settings_model
from tests.integration.test_relay import RelayThread
from tests.support.nats import (
    delete_streams,
    last_position,
    new_namespace,
    read_stream,
    require_nats,
)
from tests.support.notes_context import NOTES
from tests.support.postgres import require_postgres, scratch_databases, url_settings
from write_api.app import create_app as create_write_app

WITH_NOTES = REGISTRY.with_(NOTES)
NotesSettings = settings_model(WITH_NOTES.names)


def write_note(client: TestClient, text: str) -> dict[str, Any]:
    answer = client.post("/notes", json={"text": text})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def replay_state(env: dict[str, str], note_id: str, registry: object = WITH_NOTES) -> Any:
    """`replay state notes <id> --version 1 --json`, run on the registry given as its `obj`."""
    args = ["state", "notes", note_id, "--version", "1", "--json"]
    return CliRunner().invoke(replay_app, args, obj=registry, env=env)


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
    with TestClient(app) as client:
        written = write_note(client, "  remember the milk ")
        fanout = client.app.state.fanout  # type: ignore[attr-defined]
        notes = client.app.state.services["notes"]  # type: ignore[attr-defined]
        [envelope] = notes.recorder.select_envelopes("notes", 0, 10)

    assert fanout.contexts == (*REGISTRY.names, "notes")
    assert (tmp_path / "var" / "notes.sqlite").is_file()
    assert (envelope.context, envelope.aggregate_type) == ("notes", "Note")
    assert written["position"] == f"notes:{envelope.position}"
    assert envelope.data["text"] == "remember the milk"

    replayed = replay_state({"STRATA_DATA_DIR": str(tmp_path / "var")}, written["id"])
    assert replayed.exit_code == 0, replayed.output
    document = json.loads(replayed.stdout)
    assert (document["context"], document["version"]) == ("notes", 1)
    assert document["state"]["text"] == "remember the milk"


def test_the_registered_contexts_alone_do_not_know_a_test_context(tmp_path: Path) -> None:
    refused = replay_state({"STRATA_DATA_DIR": str(tmp_path)}, "0" * 32, registry=None)

    assert refused.exit_code == 2
    assert "unknown context 'notes'; use users or orders" in refused.output


@pytest.fixture
def stack_settings(postgres_stores: dict[str, str]) -> Iterator[CommonSettings]:
    nats = require_nats()
    with scratch_databases(require_postgres(), "notes") as notes:
        settings = NotesSettings(
            **url_settings(postgres_stores),
            notes_database_url=notes["notes"],
            nats_url=nats,
            stream_namespace=new_namespace(),
            group_commit=False,
        )
        yield settings
        delete_streams(nats, context_stream("notes", settings).name)


@pytest.mark.postgres
def test_stack_a_test_context_is_relayed_to_its_stream_and_replays(
    stack_settings: CommonSettings,
) -> None:
    with TestClient(create_write_app(stack_settings, contexts=WITH_NOTES)) as client:
        written = write_note(client, "ship it")

    stream = context_stream("notes", stack_settings)
    with RelayThread(stack_settings, "notes"):
        wait_until_published(stack_settings.nats_url, stream.name, written["position"])
    [message] = read_stream(stack_settings.nats_url, stream.name)
    assert written["position"] == f"notes:{message.position}"
    assert message.subject.startswith(f"{stack_settings.stream_namespace}.es.notes.Note.")

    env = {v: str(stack_settings.database_url(c)) for c, v in database_variables()}
    replayed = replay_state(env, written["id"])
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["state"]["text"] == "ship it"


def database_variables() -> list[tuple[str, str]]:
    return [(context.name, context.database_url_variable) for context in WITH_NOTES]


def wait_until_published(url: str, stream: str, token: str, timeout: float = 20) -> None:
    position = int(token.split(":")[1])
    deadline = time.monotonic() + timeout
    while (seen := last_position(url, stream)) < position:
        assert time.monotonic() < deadline, f"stream at {seen} after {timeout} s, not {position}"
        time.sleep(0.1)
