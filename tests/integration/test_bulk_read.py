"""The bulk read path (eventlog.bulk_read) gives the same envelopes as the live one
(`select_envelopes`, `envelope_from_record`): over a stored event of every event class of every
context, with every value the transcoder wraps and odd Unicode, on SQLite and PostgreSQL."""

import dataclasses
import enum
import types
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Union, get_args, get_origin, get_type_hints
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import CanMutateProtocol, DomainEvent
from eventsourcing.utils import resolve_topic

from contexts.registered import REGISTRY
from contexts.settings import CONTEXTS
from domain.service import CommandService
from eventlog.bulk_read import decode_record, envelope_pages
from eventlog.envelope import EventEnvelope, envelope_from_record, envelope_source
from eventlog.stores import Services
from tests.support.postgres import require_postgres, scratch_databases

ODD_TEXT = (
    "Zoë \u00e9\u0301 \U0001f355 \u05e9\u05dc\u05d5\u05dd \u2028\u2029 \"'\\ \t\n \u0000 \ufeff"
)
"""Combining marks, an astral emoji, right-to-left text, JSON's line separators, quotes, escapes,
NUL and a byte-order mark."""
PAGE = 7


@pytest.fixture
def postgres_stores() -> Iterator[dict[str, str]]:
    """Stores of the test's own, not the session's: it writes events no command could (a NUL in
    a text), which a later test's follower of the shared stores would take in (and PostgreSQL's
    jsonb refuse)."""
    with scratch_databases(require_postgres(), *CONTEXTS) as urls:
        yield urls


def _event_classes() -> Iterator[type[DomainEvent]]:
    seen: set[type[DomainEvent]] = set()
    stack: list[type[DomainEvent]] = [DomainEvent]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
    topics = {f"{c.__module__}:{c.__qualname__}" for c in seen}
    for topic in sorted(topics):
        if topic.startswith(("domain.", "contexts.")):
            yield resolve_topic(topic)  # the class a stored event of the topic is read as


def _value(hint: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return _value(next(a for a in args if a is not type(None)))
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple):
        item = args[0] if args else str
        return [_value(item), _value(item)]
    if origin is dict or hint is dict:
        return {"k\u00e9y \U0001f511": _value(args[1] if args else str)}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return next(iter(hint), ODD_TEXT)  # a subclass's member, for a field typed by the base
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint(**{name: _value(h) for name, h in _fields_of(hint).items()})
    simple: dict[Any, Any] = {
        UUID: uuid4(),
        str: ODD_TEXT,
        int: 2**40 + 7,
        float: 0.1,
        bool: True,
        Decimal: Decimal("-1234.5600"),
        datetime: datetime(2026, 12, 4, 12, 0, 0, 123456, tzinfo=UTC),
        date: date(2026, 12, 4),
        timedelta: timedelta(seconds=90),
        Any: ODD_TEXT,
        object: ODD_TEXT,
    }
    if hint in simple:
        return simple[hint]
    raise AssertionError(f"no test value for {hint!r}: teach _value this type")


def _fields_of(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _event(cls: type[DomainEvent]) -> DomainEvent:
    values: dict[str, Any] = {"originator_id": uuid4(), "originator_version": 1}
    for name, hint in _fields_of(cls).items():
        if name not in values:
            values[name] = _value(hint)
    if "originator_topic" in values:
        values["originator_topic"] = "domain.orders.order:Order"
    event = cls(**values)
    assert isinstance(event, CanMutateProtocol)
    return event


SHARED_BASES = ("domain.aggregate", "contexts.participant")
"""Modules of the base classes that contexts' aggregates and events derive from."""


def _owner(cls: type, services: Services) -> CommandService | None:
    """The application of the context whose package defines the event class (None for the
    shared bases)."""
    for context in REGISTRY:
        package = context.application.__module__.rpartition(".")[0]
        if cls.__module__.rpartition(".")[0] == package:
            return services[context.name]
    assert cls.__module__ in SHARED_BASES, f"no context owns {cls.__module__}.{cls.__qualname__}"
    return None


def _store_every_event_class(stores: Services) -> dict[str, list[str]]:
    """A stored event of each class, in its context's store; each context's event types."""
    stored: dict[str, list[str]] = {}
    for cls in _event_classes():
        app = _owner(cls, stores)
        if app is None:
            continue
        app.recorder.insert_events([app.mapper.to_stored_event(_event(cls))])
        stored.setdefault(app.name, []).append(cls.__qualname__.rpartition(".")[2])
    return stored


def _live_read(source: Any, context: str, after: int) -> list[EventEnvelope]:
    envelopes: list[EventEnvelope] = []
    while page := source.select_envelopes(
        context, envelopes[-1].position if envelopes else after, 3
    ):
        envelopes += page
    return envelopes


def test_bulk_read_gives_the_live_envelopes_for_every_event_class(stores: Services) -> None:
    # The PostgreSQL stores are the session's: they hold other tests' events before these.
    before = {app.name: int(app.recorder.max_notification_id() or 0) for app in stores.all()}
    stored = _store_every_event_class(stores)
    assert set(stored) == set(REGISTRY.names)  # every context has events
    for app in stores.all():
        source = envelope_source(app.recorder)
        live = _live_read(source, app.name, before[app.name])
        assert sorted(e.event_type for e in live) == sorted(stored[app.name])
        until = live[-2].position  # a bound inside the log
        pages = list(envelope_pages(source, app.name, live[0].position, until, PAGE))
        assert all(len(page) <= PAGE for page in pages)
        assert [e for page in pages for e in page] == [e for e in live[1:] if e.position <= until]
        assert [e.to_json() for page in pages for e in page] == [e.to_json() for e in live[1:-1]]
        assert any(ODD_TEXT in envelope.data.values() for envelope in live)


RAW = (UUID("5b36e1b2-0000-4000-8000-00000000abcd"), 3, "domain.orders.order:Order.Odd")


def _both(state: bytes) -> tuple[EventEnvelope, EventEnvelope]:
    record = (9, *RAW, state, "c", None)
    return envelope_from_record("orders", *record), decode_record("orders", record)


def test_decoders_agree_on_what_only_the_json_module_reads_and_on_nested_transcodings() -> None:
    stamp = '"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-04T12:00:00+00:00"}'
    for body in (
        '"x":NaN,"y":Infinity,"z":1e400',
        '"big":123456789012345678901234567890,"neg":-0.0',
        '"u":{"_type_":"uuid_hex","_data_":"5B36E1B2000040008000000000000ABC"}',
        '"l":[{"_type_":"decimal_str","_data_":"1.50"},[{"_type_":"uuid_hex",'
        '"_data_":"5b36e1b2000040008000000000000abc"}]],"d":{"a":{"b":{"_type_":"x","_data_":'
        '{"c":{"_type_":"decimal_str","_data_":"2"}}}}}',
        '"not_wrapped":{"_type_":"x","_data_":1,"more":2},"class_version":2',
        '"s":"\\ud83c\\udf55 \\u0000 \\u2028"',
    ):
        old, new = _both(("{" + stamp + "," + body + "}").encode())
        assert old == new
        assert old.to_json() == new.to_json()
