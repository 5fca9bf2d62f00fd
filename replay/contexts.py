"""What the aggregate commands share: checked arguments, one opened store, errors as exit codes."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from uuid import UUID

import typer
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import InterfaceError, OperationalError

from contexts.registry import Registry, UnknownContext
from domain.errors import AggregateNotFound, InvalidValue
from domain.service import CommandService
from domain.values import CANONICAL_UUID
from eventlog.stores import open_store_for_reading, sqlite_path
from replay.app import BAD_ARGUMENTS, FAILED, NOT_FOUND, fail, settings
from runtime.instants import NotAnInstant, parse_instant


def aggregate_type(registry: Registry, context: str) -> type[Aggregate]:
    """The aggregate the context's event store holds (its first declared one)."""
    try:
        return registry[context].aggregates[0]
    except UnknownContext as error:
        fail(BAD_ARGUMENTS, str(error))


def aggregate_id(text: str) -> UUID:
    return uuid_argument(text, "an aggregate id")


def uuid_argument(text: str, what: str) -> UUID:
    """An id as the APIs take it: the hyphenated 36-character form, in either case (not braced,
    `urn:uuid:` or without hyphens, which `UUID` would also read)."""
    if CANONICAL_UUID.fullmatch(text) is None:
        fail(BAD_ARGUMENTS, f"{text!r} is not {what} (a UUID)")
    return UUID(text)


def instant(option: str, text: str | None, now: datetime) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_instant(text, now=now)
    except NotAnInstant as error:
        fail(BAD_ARGUMENTS, f"{option}: {error}")


def one_line(error: BaseException, *, with_type: bool = False) -> str:
    """The first line of `error`'s message (its type's name if it has none), after that name
    `with_type`: what an operator reads of an unexpected failure on stderr."""
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__
    return f"{type(error).__name__}: {lines[0]}" if with_type else lines[0]


@contextmanager
def opened_store(registry: Registry, context: str) -> Iterator[CommandService]:
    """The context's event store, opened for reading; every failure inside is one line on stderr
    and an exit code (3 not found, 2 bad argument, 1 anything else), never a traceback."""
    config = settings(registry.only(context))  # its own store's URL is all it needs
    if config.mode == "embedded" and not sqlite_path(config, context).is_file():
        fail(
            FAILED,
            f"no {context} event store at {sqlite_path(config, context)} (set STRATA_DATA_DIR,"
            " or the STRATA_*_DATABASE_URL settings for the stack)",
        )
    with _exit_codes(context):
        service = open_store_for_reading(config, context, registry)
        try:
            yield service
        finally:
            service.close()


@contextmanager
def _exit_codes(context: str) -> Iterator[None]:
    try:
        yield
    except typer.Exit:
        raise
    except AggregateNotFound as error:
        fail(NOT_FOUND, str(error))
    except InvalidValue as error:
        fail(BAD_ARGUMENTS, str(error))
    except (OperationalError, InterfaceError) as error:
        fail(FAILED, f"the {context} event store is unreachable: {one_line(error)}")
    except Exception as error:  # noqa: BLE001 - an operator gets one line, not a traceback
        fail(FAILED, f"the {context} event store failed: {one_line(error, with_type=True)}")
