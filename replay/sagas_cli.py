"""`replay sagas list | show | retry | skip | resolve`: the order fulfilments, and the parked
ones that need a person.

`list` reads the `fulfilments` read model (the stack's PostgreSQL read database, or the embedded
`<data_dir>/read.sqlite`); `show` reads the saga from the fulfilment event store: its state and
its events. `retry`, `skip` and `resolve` run the fulfilment's commands on its store directly,
with an idempotency key (`--key`, one of their own by default); the running fulfilment process
sends what they ask for. A saga that is not parked is refused with exit code 1, a `--note` the
saga would not take with exit code 2.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast
from uuid import UUID, uuid4

import typer
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from contexts.fulfilment import ids
from contexts.fulfilment.definition import FulfilmentStatus
from contexts.fulfilment.not_found import named_by_order
from contexts.fulfilment.service import FulfilmentService
from contexts.registry import Registry
from domain.errors import AggregateNotFound, DomainError, InvalidValue
from domain.orders.order import MAX_REASON_LENGTH
from domain.service import CommandContext, CommandResult
from domain.values import bounded_text
from eventlog.envelope import EventEnvelope
from readmodels.fulfilment_catalog import FULFILMENTS
from readmodels.sql import PostgresDatabase, Row, SqlDatabase, SQLiteDatabase
from readmodels.versions import RenamingTx, active_version
from replay.aggregates_cli import LAST_VERSION, AggregateHistory
from replay.app import (
    BAD_ARGUMENTS,
    FAILED,
    JsonOption,
    app,
    contexts,
    embedded_read_database,
    fail,
    output,
    settings,
)
from replay.contexts import one_line, opened_store, uuid_argument
from replay.state_view import describe, state_of
from runtime.http import header_fields
from runtime.http.header_fields import MalformedField

CONTEXT = "fulfilment"
STATUSES = tuple(status.value for status in FulfilmentStatus)
LISTED = ("order_id", "status", "step", "attention", "reason", "updated_at")

sagas = typer.Typer(
    name="sagas",
    help="Order fulfilments: list them, show one, retry, skip or resolve a parked one.",
    no_args_is_help=True,
)
app.add_typer(sagas)

OrderArgument = typer.Argument(..., metavar="ORDER_ID", help="The order's id (a UUID).")


def _order_id(text: str) -> UUID:
    return uuid_argument(text, "an order id")


# -- list: the read model ----------------------------------------------------------------------


@contextmanager
def _read_database(registry: Registry) -> Iterator[SqlDatabase]:
    config = settings(registry.only(CONTEXT))  # its URL and the read database's suffice
    if config.read_database_url:
        database: SqlDatabase = PostgresDatabase(config.read_database_url, pool_size=1)
    else:
        database = SQLiteDatabase(embedded_read_database(config), read_only=True)
    try:
        yield database
    finally:
        database.close()


def _listed(database: SqlDatabase, status: str | None, limit: int) -> list[Row]:
    where = "" if status is None else " WHERE status = ?"
    sql = (
        f"SELECT {', '.join(LISTED)} FROM fulfilments{where}"  # noqa: S608
        " ORDER BY started_at, order_id LIMIT ?"
    )
    with database.transaction(write=False) as tx:
        version = active_version(tx, FULFILMENTS.name)
        renames = FULFILMENTS.at(version).table_renames
        reading = RenamingTx(tx, renames) if renames else tx
        return reading.query(sql, [*([status] if status else []), limit])


@sagas.command("list")
def list_command(
    ctx: typer.Context,
    status: str | None = typer.Option(
        None, "--status", help=f"Only sagas in this status: {', '.join(STATUSES)}."
    ),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000),
    as_json: bool = JsonOption,
) -> None:
    """Fulfilments from the read model, oldest first (`--status parked`: those to handle)."""
    if status is not None and status not in STATUSES:
        fail(BAD_ARGUMENTS, f"--status: {status!r}; use one of {', '.join(STATUSES)}")
    with _read_database(contexts(ctx)) as database:
        try:
            rows = _listed(database, status, limit)
        except Exception as error:  # noqa: BLE001 - an operator gets one line, not a traceback
            fail(FAILED, f"the read models failed: {one_line(error, with_type=True)}")
    items = [{name: _text(value) for name, value in zip(LISTED, row, strict=True)} for row in rows]
    table = Table(box=box.SIMPLE_HEAD)
    for column in LISTED:
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(*(item[name] or "-" for name in LISTED))
    output(as_json).result({"sagas": items}, table if items else "no sagas")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


# -- show: the event store ---------------------------------------------------------------------


@sagas.command("show")
def show_command(
    ctx: typer.Context, order: str = OrderArgument, as_json: bool = JsonOption
) -> None:
    """The order's saga from the fulfilment event store: its state and its events."""
    order_id = _order_id(order)
    saga_id = ids.saga_id(order_id)
    with opened_store(contexts(ctx), CONTEXT) as store, named_by_order(order_id):
        saga = cast(FulfilmentService, store).saga(saga_id)
        recorder = cast(AggregateHistory, store.recorder)
        envelopes = recorder.select_aggregate_envelopes(CONTEXT, saga_id, 0, LAST_VERSION)
    document = {
        "order_id": str(order_id),
        "saga_id": str(saga_id),
        "version": saga.version,
        "state": state_of(saga),
        "events": [_event(envelope) for envelope in envelopes],
    }
    output(as_json).result(document, _show_view(document))


def _event(envelope: EventEnvelope) -> dict[str, Any]:
    return {
        "version": envelope.aggregate_version,
        "timestamp": envelope.timestamp.isoformat(),
        "type": envelope.event_type,
        "data": envelope.data,
        "position": envelope.position,
    }


def _show_view(document: dict[str, Any]) -> Group:
    state = document["state"]
    heading = Text.assemble(
        (f"fulfilment of order {document['order_id']}", "bold"),
        f"\n{state['status']}, version {document['version']}",
    )
    fields = Table(box=box.SIMPLE_HEAD)
    fields.add_column("field", style="bold", no_wrap=True)
    fields.add_column("value")
    for name in ("status", "step", "attention", "reason", "note", "steps"):
        fields.add_row(name, describe(state.get(name)))
    events = Table(box=box.SIMPLE_HEAD)
    for column in ("version", "time (UTC)", "event", "data"):
        events.add_column(column, overflow="fold")
    for event in document["events"]:
        data = Text(describe(event["data"]))
        events.add_row(str(event["version"]), event["timestamp"], event["type"], data)
    return Group(heading, fields, events)


# -- retry, skip and resolve: commands on the fulfilment store -----------------------------------

KeyOption = typer.Option(
    None, "--key", help="The command's idempotency key (again: nothing is done twice)."
)
Operation = Callable[[FulfilmentService, CommandContext, UUID, str], CommandResult]
OPERATIONS: dict[str, Operation] = {
    "retry": lambda fulfilment, ctx, saga_id, _: fulfilment.retry(ctx, saga_id),
    "skip": lambda fulfilment, ctx, saga_id, note: fulfilment.skip(ctx, saga_id, note),
    "resolve": lambda fulfilment, ctx, saga_id, note: fulfilment.resolve(ctx, saga_id, note),
}


def _note(text: str) -> str:
    """The note as the saga takes it (trimmed); one it would not take is a bad argument."""
    try:
        return bounded_text(text, field="--note", max_length=MAX_REASON_LENGTH)
    except InvalidValue as bad:
        fail(BAD_ARGUMENTS, str(bad))


def _key(key: str | None) -> str | None:
    """The --key as given, if the write API would take it as an Idempotency-Key."""
    try:
        return header_fields.idempotency_key(key)
    except MalformedField as bad:
        fail(BAD_ARGUMENTS, f"--key: {bad}")


def _on_parked(
    registry: Registry, order: str, action: str, key: str | None, note: str = ""
) -> dict[str, str | int]:
    """Run `action` on the order's parked saga; what it did, as a document."""
    key = _key(key)
    order_id = _order_id(order)
    saga_id = ids.saga_id(order_id)
    ctx = CommandContext(
        idempotency_key=key or f"replay-{uuid4()}",
        fingerprint=f"{action} {saga_id} {note}".rstrip(),
    )
    with opened_store(registry, CONTEXT) as store, named_by_order(order_id):
        fulfilment = cast(FulfilmentService, store)
        try:
            result = OPERATIONS[action](fulfilment, ctx, saga_id, note)
        except DomainError as refused:  # not parked; no such saga is AggregateNotFound, below
            if isinstance(refused, AggregateNotFound):
                raise
            fail(FAILED, str(refused))
        status = fulfilment.saga(saga_id).status
    return {
        "order_id": str(order_id),
        "saga_id": str(saga_id),
        "action": action,
        "status": str(status),
        "version": result.version,
        "position": f"{CONTEXT}:{result.position}",
    }


def _done(document: dict[str, str | int], as_json: bool) -> None:
    human = (
        f"order {document['order_id']}: {document['action']} done; the saga is {document['status']}"
    )
    output(as_json).result(document, human)


@sagas.command("retry")
def retry_command(
    ctx: typer.Context,
    order: str = OrderArgument,
    key: str | None = KeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Ask again for the step a parked saga is parked on (a new command key, a new deadline)."""
    _done(_on_parked(contexts(ctx), order, "retry", key), as_json)


@sagas.command("skip")
def skip_command(
    ctx: typer.Context,
    order: str = OrderArgument,
    note: str = typer.Option(
        ..., "--note", help="Why: the step was seen to by hand, or is not to be done."
    ),
    key: str | None = KeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Go on past the compensation step a parked saga is parked on, with the rest of its
    compensation (the refund of a captured payment, the order's cancellation)."""
    _done(_on_parked(contexts(ctx), order, "skip", key, _note(note)), as_json)


@sagas.command("resolve")
def resolve_command(
    ctx: typer.Context,
    order: str = OrderArgument,
    note: str = typer.Option(..., "--note", help="How a person put things right."),
    key: str | None = KeyOption,
    as_json: bool = JsonOption,
) -> None:
    """End a parked saga as resolved: a person settled it by hand (say how in --note)."""
    _done(_on_parked(contexts(ctx), order, "resolve", key, _note(note)), as_json)
