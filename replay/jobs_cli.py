"""`replay jobs list | retry`: the parked jobs (eventlog/parked_jobs.py), work a job poller gave
up on: a provider refused it, or it failed unexpectedly too many times.

Jobs live in the event store of the context whose workers run them; a kind of job belongs to
one context (`contexts.registry.Worker`), so a kind names its store. `list` reads every such
store (or one: `--context`, `--kind`); `retry` makes a parked job due again at once with its
attempts reset and a new fence (no poller that held it before the park can touch it), and the
running pollers take it within a second.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import cast

import typer
from rich import box
from rich.table import Table

from contexts.registry import Registry
from eventlog.parked_jobs import ParkedJob, ParkedJobs
from replay.app import BAD_ARGUMENTS, NOT_FOUND, JsonOption, app, contexts, fail, output
from replay.contexts import opened_store

jobs = typer.Typer(
    name="jobs",
    help="Parked jobs (provider calls, saga commands) that need a person: list, retry.",
    no_args_is_help=True,
)
app.add_typer(jobs)

KindArgument = typer.Argument(..., metavar="KIND", help="The kind of job (`replay jobs list`).")


def kinds(registry: Registry) -> dict[str, str]:
    """Kind of job -> the context whose store holds its jobs."""
    return {worker.kind: context.name for context in registry for worker in context.workers}


def _context_of(registry: Registry, kind: str) -> str:
    known = kinds(registry)
    if kind not in known:
        fail(BAD_ARGUMENTS, f"unknown kind of job {kind!r}; use one of {', '.join(known)}")
    return known[kind]


def _contexts_listed(registry: Registry, context: str | None, kind: str | None) -> list[str]:
    with_jobs = list(dict.fromkeys(kinds(registry).values()))
    if context is not None and context not in with_jobs:
        fail(BAD_ARGUMENTS, f"no jobs in context {context!r}; use one of {', '.join(with_jobs)}")
    if kind is None:
        return with_jobs if context is None else [context]
    home = _context_of(registry, kind)
    if context not in (None, home):
        fail(BAD_ARGUMENTS, f"{kind} jobs are in the {home} context, not {context}")
    return [home]


def _parked_in(registry: Registry, context: str, kind: str | None, limit: int) -> list[ParkedJob]:
    with opened_store(registry, context) as store:
        return cast(ParkedJobs, store.recorder).parked_jobs(kind, limit)


def _listed(
    registry: Registry, context: str | None, kind: str | None, limit: int
) -> Iterator[tuple[str, ParkedJob]]:
    for name in _contexts_listed(registry, context, kind):
        for job in _parked_in(registry, name, kind, limit):
            yield name, job


@jobs.command("list")
def list_command(
    ctx: typer.Context,
    context: str | None = typer.Option(None, "--context", help="Only this context's jobs."),
    kind: str | None = typer.Option(None, "--kind", help="Only jobs of this kind."),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000, help="At most per context."),
    as_json: bool = JsonOption,
) -> None:
    """Parked jobs, the earliest parked first in each context, with why they were parked."""
    listed = list(_listed(contexts(ctx), context, kind, limit))
    documents = [{"context": name, **job.as_json()} for name, job in listed]
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("context", "kind", "key", "attempts", "parked at (UTC)", "reason"):
        table.add_column(column, overflow="fold")
    for name, job in listed:
        parked_at = job.parked_at.isoformat(timespec="seconds")
        table.add_row(name, job.kind, job.key, str(job.attempts), parked_at, job.reason)
    output(as_json).result({"parked_jobs": documents}, table if listed else "no parked jobs")


@jobs.command("retry")
def retry_command(
    ctx: typer.Context,
    kind: str = KindArgument,
    key: str | None = typer.Argument(None, metavar="[KEY]", help="The job's key."),
    every: bool = typer.Option(False, "--all", help="Every parked job of the kind."),
    as_json: bool = JsonOption,
) -> None:
    """Run a parked job again (or `--all` of its kind): due now, attempts reset (exit 3 if
    none of them is parked)."""
    if key is not None and not key.strip():
        fail(BAD_ARGUMENTS, "the job's KEY is empty")
    if key is not None and every:
        fail(BAD_ARGUMENTS, "a KEY and --all: give one of them")
    if key is None and not every:
        fail(BAD_ARGUMENTS, "give the job's KEY, or --all for every parked job of the kind")
    registry = contexts(ctx)
    context = _context_of(registry, kind)
    with opened_store(registry, context) as store:
        parked = cast(ParkedJobs, store.recorder)
        retried = parked.retry_parked_jobs(kind, key, datetime.now(UTC))
    if not retried:
        fail(NOT_FOUND, f"no parked {kind} job {key!r}" if key else f"no parked {kind} jobs")
    document = {"context": context, "kind": kind, "retried": retried}
    output(as_json).result(
        document, f"{kind}: {len(retried)} job(s) due again: " + ", ".join(retried)
    )
