"""What the ledger-like SQL projections share: a row per aggregate whose status follows its
events, with the columns some events carry, the version and the update time."""

from collections.abc import Mapping

from eventlog.envelope import EventEnvelope
from projections.models.rows import change_one
from readmodels.sql import Tx

StatusChange = tuple[str, tuple[str, ...]]
"""The status an event sets, and the event's fields copied into same-named columns."""


def follow_status(
    tx: Tx, table: str, changes: Mapping[str, StatusChange], event: EventEnvelope
) -> None:
    """Apply an event of `changes` to the aggregate's row of `table` (others are ignored)."""
    change = changes.get(event.event_type)
    if change is None:
        return
    status, copied = change
    columns = {name: event.data[name] for name in copied}
    assignments = "".join(f"{name} = ?, " for name in columns)
    change_one(
        tx,
        f"UPDATE {table} SET status = ?, {assignments}version = ?, updated_at = ?"  # noqa: S608
        " WHERE id = ?",
        [status, *columns.values(), event.aggregate_version, event.timestamp, event.aggregate_id],
        f"{table} row {event.aggregate_id}",
    )
