"""`replay state | history | diff`: an aggregate as of any instant, its events, what changed."""

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast
from uuid import UUID

import typer
from eventsourcing.domain import Aggregate
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from contexts.registered import REGISTRY
from domain.errors import AggregateNotFound
from domain.service import CommandService
from eventlog.envelope import EventEnvelope
from replay.app import (
    BAD_ARGUMENTS,
    LARGEST_NUMBER,
    JsonOption,
    app,
    contexts,
    fail,
    output,
)
from replay.contexts import aggregate_id, aggregate_type, instant, opened_store
from replay.state_view import changes, describe, state_of

TIME_FORMS = (
    "ISO 8601 (2026-11-26T10:42:00Z; without an offset the time is UTC), now, or relative to"
    " now: -90s, -30m, -2h, -1d, -1w, -1h30m."
)
CONTEXT_HELP = "The bounded context: " + " or ".join(REGISTRY.names) + "."
ID_HELP = "The aggregate's id (a UUID)."
LAST_VERSION = 2**62
ONE_MICROSECOND = timedelta(microseconds=1)


class AggregateHistory(Protocol):
    def select_aggregate_envelopes(
        self, context: str, originator_id: UUID, after_version: int, up_to_version: int
    ) -> list[EventEnvelope]: ...


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _snapshot_document(
    context: str, aggregate: Aggregate, as_of: datetime | None
) -> dict[str, Any]:
    return {
        "context": context,
        "aggregate_type": type(aggregate).__name__,
        "id": str(aggregate.id),
        "version": aggregate.version,
        "as_of": _iso(as_of),
        "last_event_at": _iso(aggregate.modified_on),
        "state": state_of(aggregate),
    }


@app.command("state")
def state_command(
    ctx: typer.Context,
    context: str = typer.Argument(..., metavar="CONTEXT", help=CONTEXT_HELP),
    aggregate: str = typer.Argument(..., metavar="AGGREGATE_ID", help=ID_HELP),
    at: str | None = typer.Option(None, "--at", help=f"The instant: {TIME_FORMS}"),
    version: int | None = typer.Option(
        None, "--version", min=1, max=LARGEST_NUMBER, help="Or the version."
    ),
    as_json: bool = JsonOption,
) -> None:
    """The aggregate's state as of an instant (the fold of exactly its events with timestamp
    <= it), or at a version, with that version and the time of its last applied event."""
    registry = contexts(ctx)
    kind, key = aggregate_type(registry, context), aggregate_id(aggregate)
    if (at is None) == (version is None):
        fail(BAD_ARGUMENTS, "give exactly one of --at and --version")
    moment = instant("--at", at, datetime.now(UTC))
    with opened_store(registry, context) as store:
        state = store.state_at(kind, key, at=moment, version=version)
    document = _snapshot_document(context, state, moment)
    output(as_json).result(document, _state_view(document))


def _when(iso: str | None) -> str:
    """A time for people: UTC, to the microsecond (the form --at takes back)."""
    if iso is None:
        return "-"
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _heading(document: dict[str, Any], detail: str) -> Text:
    name = f"{document['aggregate_type']} {document['id']} in {document['context']}"
    return Text.assemble((name, "bold"), "\n", detail)


def _state_view(document: dict[str, Any]) -> Group:
    detail = f"version {document['version']}, last event {_when(document['last_event_at'])} UTC"
    if document["as_of"] is not None:
        detail += f", as of {_when(document['as_of'])} UTC"
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value")
    for name, value in document["state"].items():
        table.add_row(name, describe(value))
    return Group(_heading(document, detail), table)


@app.command("history")
def history_command(
    ctx: typer.Context,
    context: str = typer.Argument(..., metavar="CONTEXT", help=CONTEXT_HELP),
    aggregate: str = typer.Argument(..., metavar="AGGREGATE_ID", help=ID_HELP),
    since: str | None = typer.Option(None, "--since", help=f"From this instant on: {TIME_FORMS}"),
    until: str | None = typer.Option(None, "--until", help="Up to this instant, inclusive."),
    as_json: bool = JsonOption,
) -> None:
    """The aggregate's events (version, time, type, data, correlation id), oldest first."""
    registry = contexts(ctx)
    kind, key = aggregate_type(registry, context), aggregate_id(aggregate)
    now = datetime.now(UTC)
    start, end = instant("--since", since, now), instant("--until", until, now)
    if start is not None and end is not None and start > end:
        fail(BAD_ARGUMENTS, "--since is after --until")
    with opened_store(registry, context) as store:
        envelopes = _history(store, context, kind, key, start, end)
    document = {
        "context": context,
        "aggregate_type": kind.__name__,
        "id": str(key),
        "since": _iso(start),
        "until": _iso(end),
        "events": [_event_document(envelope) for envelope in envelopes],
    }
    output(as_json).result(document, _history_view(document))


def _history(
    store: CommandService,
    context: str,
    kind: type[Aggregate],
    key: UUID,
    start: datetime | None,
    end: datetime | None,
) -> list[EventEnvelope]:
    """Timestamps increase with the version, so a time range is a version range."""
    index = store.side_records
    if index.metadata_of(key, 1) is None:
        raise AggregateNotFound(f"no {kind.__name__} with id {key}")
    after = (index.version_at(key, start - ONE_MICROSECOND) or 0) if start else 0
    up_to = (index.version_at(key, end) or 0) if end else LAST_VERSION
    if up_to <= after:
        return []
    recorder = cast(AggregateHistory, store.recorder)
    return recorder.select_aggregate_envelopes(context, key, after, up_to)


def _event_document(envelope: EventEnvelope) -> dict[str, Any]:
    return {
        "version": envelope.aggregate_version,
        "timestamp": envelope.timestamp.isoformat(),
        "type": envelope.event_type,
        "data": envelope.data,
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
        "position": envelope.position,
    }


def _history_view(document: dict[str, Any]) -> Group:
    span = f"from {_when(document['since'])} " if document["since"] else ""
    span += f"until {_when(document['until'])} " if document["until"] else ""
    detail = f"{len(document['events'])} events {span}".rstrip()
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("version", justify="right", no_wrap=True)
    table.add_column("time (UTC)", min_width=15)
    table.add_column("event", no_wrap=True)
    table.add_column("data", min_width=16)
    table.add_column("correlation", min_width=12, overflow="fold")
    for event in document["events"]:
        table.add_row(
            str(event["version"]),
            _when(event["timestamp"]),
            event["type"],
            Text(describe(event["data"])),
            event["correlation_id"] or "-",
        )
    return Group(_heading(document, detail), table)


@app.command("diff")
def diff_command(
    ctx: typer.Context,
    context: str = typer.Argument(..., metavar="CONTEXT", help=CONTEXT_HELP),
    aggregate: str = typer.Argument(..., metavar="AGGREGATE_ID", help=ID_HELP),
    start: str = typer.Option(..., "--from", help=f"The earlier instant: {TIME_FORMS}"),
    end: str = typer.Option(..., "--to", help="The later instant."),
    as_json: bool = JsonOption,
) -> None:
    """Field by field, what changed in the aggregate's state between two instants."""
    registry = contexts(ctx)
    kind, key = aggregate_type(registry, context), aggregate_id(aggregate)
    now = datetime.now(UTC)
    before_at, after_at = instant("--from", start, now), instant("--to", end, now)
    if before_at is not None and after_at is not None and before_at > after_at:
        fail(BAD_ARGUMENTS, "--from is after --to")
    with opened_store(registry, context) as store:
        before = store.state_at(kind, key, at=before_at)
        after = store.state_at(kind, key, at=after_at)
    document = {
        "context": context,
        "aggregate_type": kind.__name__,
        "id": str(key),
        "from": _end_of_diff(before, before_at),
        "to": _end_of_diff(after, after_at),
        "changes": changes(state_of(before), state_of(after)),
    }
    output(as_json).result(document, _diff_view(document))


def _end_of_diff(aggregate: Aggregate, at: datetime | None) -> dict[str, Any]:
    return {
        "as_of": _iso(at),
        "version": aggregate.version,
        "last_event_at": _iso(aggregate.modified_on),
    }


def _diff_view(document: dict[str, Any]) -> Group:
    before, after = document["from"], document["to"]
    detail = (
        f"from version {before['version']} as of {_when(before['as_of'])} UTC\n"
        f"  to version {after['version']} as of {_when(after['as_of'])} UTC"
    )
    if not document["changes"]:
        return Group(_heading(document, detail), Text("no field changed"))
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("from")
    table.add_column("to")
    for name, change in document["changes"].items():
        table.add_row(name, describe(change["from"]), describe(change["to"]))
    return Group(_heading(document, detail), table)
