"""`replay rebuild | projections | dlq`: projection rebuilds, their state, and dead letters.

Each command opens the read models the settings select (the stack's PostgreSQL read database
and Redis, or the embedded `<data_dir>/read.sqlite`) and turns every failure into one line on
stderr and an exit code (see replay.app). The projections are those the registered contexts
declare, or another registry's passed as the command's `obj` (replay.app.contexts).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings
from eventlog.stores import sqlite_path
from projections.admin import DeadLetterAdmin, DeadLetterError, open_admin
from projections.dead_letters import DeadLetter, Status
from projections.rebuild import PAGE_SIZE, RETIRE_GRACE, Rebuilder
from projections.rebuild_reports import (
    Busy,
    RebuildError,
    Result,
    UnknownProjection,
    VerifyFailed,
)
from projections.rebuild_targets import ReadModels, open_read_models
from projections.status import projection_statuses
from replay.app import (
    BAD_ARGUMENTS,
    FAILED,
    LARGEST_NUMBER,
    NOT_FOUND,
    JsonOption,
    app,
    contexts,
    embedded_read_database,
    fail,
    output,
    settings,
)
from replay.contexts import one_line
from replay.progress import RebuildProgress
from runtime.instants import FORMS, NotAnInstant, parse_instant

dlq = typer.Typer(
    name="dlq",
    help="Inspect and drain the dead letters (events a projection could not apply).",
    no_args_is_help=True,
)
app.add_typer(dlq)

STATUSES: tuple[Status, ...] = ("parked", "retried", "skipped")
PROJECTION_NAMES = ", ".join(model.name for model in REGISTRY.read_models)


def _check_projection(name: str, registry: Registry) -> None:
    names = [model.name for model in registry.read_models]
    if name not in names:
        fail(BAD_ARGUMENTS, f"unknown projection {name!r}; use one of {', '.join(names)}")


def _check_stores(config: Settings, registry: Registry) -> None:
    """The embedded mode needs existing event stores: a rebuild must not create empty ones."""
    if config.mode != "embedded":
        return
    for context in registry.names:
        if not sqlite_path(config, context).is_file():
            fail(
                FAILED,
                f"no {context} event store at {sqlite_path(config, context)} (set"
                " STRATA_DATA_DIR, or the STRATA_*_DATABASE_URL settings for the stack)",
            )


@contextmanager
def _read_models(registry: Registry) -> Iterator[ReadModels]:
    config = settings(registry)
    _check_stores(config, registry)
    with _exit_codes(), open_read_models(config, registry) as models:
        yield models


@contextmanager
def _exit_codes() -> Iterator[None]:
    try:
        yield
    except typer.Exit:
        raise
    except UnknownProjection as error:
        fail(BAD_ARGUMENTS, str(error))
    except DeadLetterError as error:
        text = str(error)
        fail(NOT_FOUND if text.startswith("no dead letter") else FAILED, text)
    except (Busy, VerifyFailed, RebuildError) as error:
        fail(FAILED, str(error))
    except Exception as error:  # noqa: BLE001 - an operator gets one line, not a traceback
        fail(FAILED, f"the read models failed: {one_line(error, with_type=True)}")


# -- rebuild ---------------------------------------------------------------------------------


@app.command("rebuild")
def rebuild_command(
    ctx: typer.Context,
    projection: str = typer.Argument(..., help=f"The projection: {PROJECTION_NAMES}."),
    at: str | None = typer.Option(
        None, "--at", help=f"Build the model as of this time beside live, for audit: {FORMS}."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    retire: bool = typer.Option(
        False, "--retire", help="Drop the versions earlier swaps left behind, instead."
    ),
    grace: float = typer.Option(
        RETIRE_GRACE.total_seconds(),
        "--grace",
        min=0,
        help="With --retire: seconds the swap must be old, so no reader still holds the old"
        " version's pointer.",
    ),
    changed: bool = typer.Option(
        False,
        "--changed",
        help="The projection's code changed on purpose: swap the rebuilt model in even though"
        " it differs from live, and list the first differences.",
    ),
    page_size: int = typer.Option(PAGE_SIZE, "--page-size", min=1, max=100_000),
    as_json: bool = JsonOption,
) -> None:
    """Rebuild a read model from the event stores into a shadow version, catch up, verify it
    against live at the same position (checksum) and swap atomically; resumable."""
    registry = contexts(ctx)
    _check_projection(projection, registry)
    moment = _instant(at)
    if retire and (moment is not None or dry_run or changed):
        fail(BAD_ARGUMENTS, "--retire takes no --at, --dry-run or --changed")
    if changed and moment is not None:
        fail(BAD_ARGUMENTS, "--changed takes no --at: an audit version is never swapped in")
    out = output(as_json)
    with _read_models(registry) as models:
        if retire:
            rebuilder = Rebuilder(models)
            dropped = rebuilder.retire(projection, grace=timedelta(seconds=grace))
            out.result(
                {"projection": projection, "retired": dropped},
                f"{projection}: retired {', '.join(f'v{v}' for v in dropped) or 'nothing'}",
            )
            return
        if dry_run:
            plan = Rebuilder(models, page_size=page_size).plan(projection, at=moment, dry_run=True)
            out.result({"dry_run": True, **plan.as_json()}, _plan_view(plan.as_json()))
            return
        console = Console(stderr=True)
        progress = None if as_json or not console.is_terminal else RebuildProgress(console)
        rebuilder = Rebuilder(models, page_size=page_size, progress=progress)
        try:
            result = rebuilder.rebuild(projection, at=moment, changed=changed)
        finally:
            if progress is not None:
                progress.stop()
        out.result(result.as_json(), _result_view(result))


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = parse_instant(text, now=datetime.now(UTC))
    except NotAnInstant as error:
        fail(BAD_ARGUMENTS, f"--at: {error}")
    if moment > datetime.now(UTC):
        fail(BAD_ARGUMENTS, f"--at: {text!r} is in the future")
    return moment


def _plan_view(plan: dict[str, Any]) -> str:
    lines = [
        f"dry run: {plan['projection']} would be {'audited' if plan['as_of'] else 'rebuilt'}",
        f"  live version     v{plan['live_version']}",
        f"  shadow version   v{plan['version']}{' (resumed)' if plan['resumed'] else ''}",
        f"  target           {plan['target']}",
    ]
    if plan["as_of"]:
        lines.append(f"  as of            {plan['as_of']}")
    for context, head in plan["source_heads"].items():
        done = plan["shadow_positions"].get(context, 0)
        lines.append(f"  {context:<16} source head {head}, shadow at {done}")
    lines.append(f"  events to read   {plan['events_to_read']}")
    return "\n".join(lines)


def _result_view(result: Result) -> str:
    document = result.as_json()
    what = (
        f"swapped: v{document['version']} is active (v{document['live_version']} kept until"
        f" `replay rebuild --retire {document['projection']}`)"
        if result.swapped
        else f"audit version v{document['version']} built beside live"
    )
    positions = ", ".join(f"{c}:{p}" for c, p in document["positions"].items())
    rate = document["events_per_second"]
    lines = [
        f"{document['projection']}: {what}",
        f"  {document['events']} events in {document['seconds']} s"
        f"{f' ({rate:.0f} events/s)' if rate else ''}; verified at {positions};"
        f" checksum {(document['checksum'] or '')[:16]}",
    ]
    if result.differences:
        lines.append("  differed from live (--changed):")
        lines += [f"    {difference}" for difference in result.differences]
    return "\n".join(lines)


# -- projections -----------------------------------------------------------------------------


@app.command("projections")
def projections_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Each projection's active version, position and lag per context, dead letters, versions."""
    with _read_models(contexts(ctx)) as models:
        statuses = projection_statuses(models)
    documents = [status.as_json() for status in statuses]
    output(as_json).result({"projections": documents}, _projections_table(documents))


def _projections_table(documents: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("projection", "active", "positions", "lag (events)", "lag (s)", "DLQ"):
        table.add_column(column, overflow="fold")
    table.add_column("versions", overflow="fold")
    for doc in documents:
        table.add_row(
            doc["projection"],
            f"v{doc['active_version']}",
            ", ".join(f"{c['context']}:{c['position']}/{c['head']}" for c in doc["contexts"]),
            str(doc["lag_events"]),
            f"{doc['lag_seconds']:.1f}",
            str(doc["dead_letters"]),
            ", ".join(f"{v['label']} {v['status']}" for v in doc["versions"]) or "-",
        )
    return table


# -- dlq -------------------------------------------------------------------------------------


@contextmanager
def _admin(registry: Registry) -> Iterator[DeadLetterAdmin]:
    config = settings(registry)
    if config.mode == "embedded":
        embedded_read_database(config)
    with _exit_codes(), open_admin(config, registry.projections()) as admin:
        yield admin


def _letter_row(letter: DeadLetter) -> list[str]:
    return [
        str(letter.id),
        f"{letter.projection}:v{letter.version}",
        f"{letter.context}:{letter.position}",
        letter.event_type,
        letter.status,
        str(letter.attempts),
        letter.error,
    ]


@dlq.command("list")
def dlq_list(
    ctx: typer.Context,
    projection: str | None = typer.Option(None, "--projection", help="Only this projection."),
    status: str = typer.Option("parked", "--status", help="parked, retried, skipped or all."),
    after: int = typer.Option(0, "--after", min=0, max=LARGEST_NUMBER, help="Page after this id."),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000),
    as_json: bool = JsonOption,
) -> None:
    """Dead letters by id (keyset pages: pass the last id as --after)."""
    registry = contexts(ctx)
    if projection is not None:
        _check_projection(projection, registry)
    if status != "all" and status not in STATUSES:
        fail(BAD_ARGUMENTS, f"--status: {status!r}; use parked, retried, skipped or all")
    chosen: Status | None = None if status == "all" else status  # type: ignore[assignment]
    with _admin(registry) as admin:
        letters = admin.listing(projection=projection, status=chosen, after_id=after, limit=limit)
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("id", "projection", "position", "event", "status", "attempts", "error"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(*_letter_row(letter))
    document = {"dead_letters": [letter.as_json() for letter in letters]}
    output(as_json).result(document, table if letters else "no dead letters")


@dlq.command("show")
def dlq_show(
    ctx: typer.Context,
    letter_id: int = typer.Argument(..., metavar="ID", min=1, max=LARGEST_NUMBER),
    as_json: bool = JsonOption,
) -> None:
    """One dead letter with its error and envelope."""
    with _admin(contexts(ctx)) as admin:
        letter = admin.show(letter_id)
    output(as_json).result(letter.as_json())


@dlq.command("retry")
def dlq_retry(
    ctx: typer.Context,
    letter_id: int = typer.Argument(..., metavar="ID", min=1, max=LARGEST_NUMBER),
    as_json: bool = JsonOption,
) -> None:
    """Apply a parked event again, then the events parked behind it (exit 1 if one fails)."""
    with _admin(contexts(ctx)) as admin:
        result = admin.retry(letter_id)
    document = {
        "retried": result.retried,
        "failed": None if result.failed is None else result.failed.as_json(),
    }
    human = f"retried {', '.join(map(str, result.retried)) or 'nothing'}"
    if result.failed is not None:
        human += f"; {result.failed.id} failed again: {result.failed.error}"
    output(as_json).result(document, human)
    if result.failed is not None:
        raise typer.Exit(FAILED)


@dlq.command("skip")
def dlq_skip(
    ctx: typer.Context,
    letter_id: int = typer.Argument(..., metavar="ID", min=1, max=LARGEST_NUMBER),
    as_json: bool = JsonOption,
) -> None:
    """Give up on a parked event (the events parked behind it stay parked)."""
    with _admin(contexts(ctx)) as admin:
        letter = admin.skip(letter_id)
    output(as_json).result(letter.as_json(), f"dead letter {letter.id} skipped")
