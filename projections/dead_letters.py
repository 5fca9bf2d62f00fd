"""Parked events (`dead_letters`, in the SQL read database): record, look up, list, resolve.

An event a projection fails on is parked with its error (and retried on a schedule, see
:mod:`projections.retrying`); later events of the same
aggregate for the same projection are parked behind it (error ``blocked by position <p>``), so
per-aggregate order holds while other aggregates keep flowing. Resolving them (retry, skip) is
in :mod:`projections.admin`.

A read model can be projected again over positions it has seen (a Redis that lost data, a
backfill, a rebuild). The rows decide what such a re-projection does with an event: a `skipped`
one is a person's decision about (projection, version, position) and is honoured (not applied,
and no longer holding its aggregate back); a `retried` one that fails again is parked again
(its row back to `parked` with the new error and attempt), never left as it was.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from eventlog.envelope import EventEnvelope
from projections.model import Message, Park
from readmodels.sql import Row, Tx

Status = Literal["parked", "retried", "skipped"]

_COLUMNS = (
    "id, projection, version, context, position, stream_seq, aggregate_id, event_type, error,"
    " attempts, envelope, status, parked_at"
)


@dataclass(frozen=True)
class DeadLetter:
    id: int
    projection: str
    version: int
    context: str
    position: int
    stream_seq: int | None
    aggregate_id: UUID
    event_type: str
    error: str
    attempts: int
    envelope: EventEnvelope
    status: Status
    parked_at: datetime

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready view (for a CLI's --json)."""
        return {
            "id": self.id,
            "projection": self.projection,
            "version": self.version,
            "context": self.context,
            "position": self.position,
            "stream_seq": self.stream_seq,
            "aggregate_id": str(self.aggregate_id),
            "event_type": self.event_type,
            "error": self.error,
            "attempts": self.attempts,
            "envelope": json.loads(self.envelope.to_json()),
            "status": self.status,
            "parked_at": self.parked_at.isoformat(),
        }


def blocked_error(head_position: int) -> str:
    return f"blocked by position {head_position}"


def insert(tx: Tx, projection: str, version: int, context: str, parks: Sequence[Park]) -> None:
    """Record parked events. One already recorded (same position) is left as it is, unless it
    was `retried`: failing again on a re-projection parks it again, with one more attempt."""
    for park in parks:
        _upsert(
            tx,
            projection,
            version,
            context,
            park,
            "parked",
            " DO UPDATE SET status = 'parked', error = excluded.error,"
            " attempts = dead_letters.attempts + excluded.attempts, parked_at = excluded.parked_at"
            " WHERE dead_letters.status = 'retried'",
        )


def skipped(tx: Tx, projection: str, version: int, context: str, first: int, last: int) -> set[int]:
    """The skipped positions from `first` to `last`: a re-projection leaves them out."""
    rows = tx.query(
        "SELECT position FROM dead_letters WHERE projection = ? AND version = ? AND context = ?"
        " AND position BETWEEN ? AND ? AND status = 'skipped'",
        [projection, version, context, first, last],
    )
    return {int(row[0]) for row in rows}


def skips(tx: Tx, projection: str, version: int) -> list[DeadLetter]:
    """Every event a person skipped in a version of a projection."""
    rows = tx.query(
        f"SELECT {_COLUMNS} FROM dead_letters"  # noqa: S608
        " WHERE projection = ? AND version = ? AND status = 'skipped' ORDER BY id",
        [projection, version],
    )
    return [_letter(row) for row in rows]


def record_skips(tx: Tx, version: int, letters: Sequence[DeadLetter]) -> None:
    """Skip the letters' events in `version` too (a rebuild's new version: it must leave out
    what the live one left out); one parked there is marked skipped."""
    for letter in letters:
        park = Park(Message(letter.envelope, letter.stream_seq or 0), letter.error, letter.attempts)
        _upsert(
            tx,
            letter.projection,
            version,
            letter.context,
            park,
            "skipped",
            " DO UPDATE SET status = 'skipped' WHERE dead_letters.status = 'parked'",
        )


def _upsert(
    tx: Tx,
    projection: str,
    version: int,
    context: str,
    park: Park,
    status: Status,
    on_conflict: str,
) -> None:
    envelope = park.message.envelope
    tx.execute(
        "INSERT INTO dead_letters (projection, version, context, position, stream_seq,"  # noqa: S608
        " aggregate_id, event_type, error, attempts, envelope, status, parked_at)"
        f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS {tx.dialect.types['json']}), ?, ?)"
        f" ON CONFLICT (projection, version, context, position){on_conflict}",
        [
            projection,
            version,
            context,
            envelope.position,
            park.message.stream_seq or None,
            envelope.aggregate_id,
            f"{envelope.aggregate_type}.{envelope.event_type}",
            park.error,
            park.attempts,
            envelope.to_json().decode(),
            status,
            datetime.now(UTC),
        ],
    )


def parked_heads(tx: Tx, projection: str, version: int, context: str) -> dict[UUID, int]:
    """Aggregates with parked events, each with its first parked position."""
    rows = tx.query(
        "SELECT aggregate_id, min(position) FROM dead_letters"
        " WHERE projection = ? AND version = ? AND context = ? AND status = 'parked'"
        " GROUP BY aggregate_id",
        [projection, version, context],
    )
    return {_uuid(row[0]): int(row[1]) for row in rows}


def heads(tx: Tx, projection: str, version: int, context: str) -> list[DeadLetter]:
    """The first parked event of each aggregate, in position order."""
    rows = tx.query(
        f"SELECT {_COLUMNS} FROM dead_letters"  # noqa: S608
        " WHERE projection = ? AND version = ? AND context = ? AND status = 'parked'"
        " ORDER BY position",
        [projection, version, context],
    )
    first: dict[UUID, DeadLetter] = {}
    for letter in map(_letter, rows):
        first.setdefault(letter.aggregate_id, letter)
    return list(first.values())


def find(tx: Tx, projection: str, version: int, context: str, position: int) -> DeadLetter | None:
    row = tx.query_one(
        f"SELECT {_COLUMNS} FROM dead_letters"  # noqa: S608
        " WHERE projection = ? AND version = ? AND context = ? AND position = ?",
        [projection, version, context, position],
    )
    return None if row is None else _letter(row)


def get(tx: Tx, letter_id: int) -> DeadLetter | None:
    row = tx.query_one(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = ?", [letter_id])  # noqa: S608
    return None if row is None else _letter(row)


def listing(
    tx: Tx,
    *,
    projection: str | None = None,
    status: Status | None = "parked",
    after_id: int = 0,
    limit: int = 100,
) -> list[DeadLetter]:
    """Dead letters by id (keyset pages: pass the last id as `after_id`)."""
    clauses: list[str] = ["id > ?"]
    params: list[object] = [after_id]
    if projection is not None:
        clauses.append("projection = ?")
        params.append(projection)
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    rows = tx.query(
        f"SELECT {_COLUMNS} FROM dead_letters WHERE {' AND '.join(clauses)}"  # noqa: S608
        " ORDER BY id LIMIT ?",
        [*params, limit],
    )
    return [_letter(row) for row in rows]


def chain(tx: Tx, letter: DeadLetter) -> list[DeadLetter]:
    """The parked events of the letter's aggregate and projection, in position order."""
    rows = tx.query(
        f"SELECT {_COLUMNS} FROM dead_letters"  # noqa: S608
        " WHERE projection = ? AND version = ? AND context = ? AND aggregate_id = ?"
        " AND status = 'parked' ORDER BY position",
        [letter.projection, letter.version, letter.context, letter.aggregate_id],
    )
    return [_letter(row) for row in rows]


def mark(tx: Tx, letter_id: int, status: Status, *, only_if: Status | None = None) -> bool:
    """Set the status (only from `only_if`, if given); whether the letter changed."""
    if only_if is None:
        return (
            tx.execute("UPDATE dead_letters SET status = ? WHERE id = ?", [status, letter_id]) == 1
        )
    changed = tx.execute(
        "UPDATE dead_letters SET status = ? WHERE id = ? AND status = ?",
        [status, letter_id, only_if],
    )
    return changed == 1


def record_failure(tx: Tx, letter_id: int, error: str, attempts: int) -> None:
    tx.execute(
        "UPDATE dead_letters SET error = ?, attempts = ? WHERE id = ?",
        [error, attempts, letter_id],
    )


def depth(tx: Tx) -> dict[tuple[str, int], int]:
    """Parked events per (projection, version)."""
    rows = tx.query(
        "SELECT projection, version, count(*) FROM dead_letters WHERE status = 'parked'"
        " GROUP BY projection, version"
    )
    return {(str(row[0]), int(row[1])): int(row[2]) for row in rows}


def _uuid(value: object) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _letter(row: Row) -> DeadLetter:
    envelope = row[10]
    raw = envelope.encode() if isinstance(envelope, str) else json.dumps(envelope).encode()
    parked_at = row[12]
    if isinstance(parked_at, str):
        parked_at = datetime.fromisoformat(parked_at)
    return DeadLetter(
        id=int(row[0]),
        projection=str(row[1]),
        version=int(row[2]),
        context=str(row[3]),
        position=int(row[4]),
        stream_seq=None if row[5] is None else int(row[5]),
        aggregate_id=_uuid(row[6]),
        event_type=str(row[7]),
        error=str(row[8]),
        attempts=int(row[9]),
        envelope=EventEnvelope.from_json(raw),
        status=row[11],
        parked_at=parked_at,
    )
