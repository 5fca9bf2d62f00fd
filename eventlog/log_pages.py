"""Pages of a context's log for a reader that takes in some kinds of events only.

A kind is an event's (aggregate type, event type), as its envelope names them
(`UserProfile`, `Deactivated`). A reader that declares the kinds it needs (a reaction, a
replica: `eventlog.replicas.Intake.kinds`) is given a page of those events alone: the others
are neither sent by the database nor decoded. The page still says how far the read went in the
log, whatever the kinds it met (`LogPage.reached`), so that a reader's checkpoint moves past a
stretch of events it ignores, and a read of nothing it needs is not made again and again.

Positions are read in commit order (the recorders' appends take the events table's lock), so a
reader that moves to `reached` skips no event that commits later.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from eventlog.envelope import EventEnvelope, envelope_from_row

EventKind = tuple[str, str]
"""(aggregate type, event type)."""

Kinds = frozenset[EventKind] | None
"""The kinds of events a reader takes in; None: every kind."""


@dataclass(frozen=True)
class LogPage:
    envelopes: Sequence[EventEnvelope]
    """The events of the kinds asked for, in log order."""
    reached: int
    """The last position the read passed, of whatever kind; the position read after when it
    passed none."""
    full: bool
    """The read stopped at its limit: the log may hold more after `reached`."""


@runtime_checkable
class PageSource(Protocol):
    """A context's log read in pages of some kinds of events (the recorders of
    `eventlog.postgres_recorder` and `eventlog.sqlite_recorder`)."""

    def select_page(self, context: str, after: int, limit: int, kinds: Kinds = None) -> LogPage:
        """The events of `kinds` among the (at most) `limit` events after position `after`."""


def page_source(recorder: Any) -> PageSource:
    """The recorder of an application built by eventlog.stores, as a PageSource."""
    if not isinstance(recorder, PageSource):
        raise TypeError(f"{type(recorder).__name__} cannot read pages of its log")
    return recorder


def topic_names(kinds: Collection[EventKind]) -> list[str]:
    """The kinds as the part of a stored event's topic after the module (`UserProfile.Renamed`
    of `domain.users.profile:UserProfile.Renamed`), which `envelope_from_record` splits in two."""
    return sorted(f"{aggregate_type}.{event_type}" for aggregate_type, event_type in kinds)


class RecorderPages:
    """`PageSource` for a recorder: every kind from its `select_envelopes`, some kinds from its
    `_kinds_rows`, whose statement scans the `limit` events after `after` and returns the rows of
    those of the kinds, each with the scan's `reached` (its last position) and `scanned` (how
    many), or one row of these two alone when none is of the kinds."""

    def select_envelopes(self, context: str, after: int, limit: int) -> list[EventEnvelope]:
        raise NotImplementedError

    def _kinds_rows(self, after: int, limit: int, names: list[str]) -> Sequence[Any]:
        raise NotImplementedError

    def select_page(self, context: str, after: int, limit: int, kinds: Kinds = None) -> LogPage:
        if kinds is None:
            envelopes = self.select_envelopes(context, after, limit)
            reached = envelopes[-1].position if envelopes else after
            return LogPage(envelopes, reached, len(envelopes) == limit)
        rows = self._kinds_rows(after, limit, topic_names(kinds))
        envelopes = [envelope_from_row(context, row) for row in rows if row["position"] is not None]
        scanned, reached = rows[0]["scanned"], rows[0]["reached"]
        return LogPage(envelopes, after if reached is None else reached, scanned == limit)
