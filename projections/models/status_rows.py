"""What the ledger-like SQL projections share: a row per aggregate whose status follows its
events, with the columns some events carry, the version and the update time."""

from collections.abc import Mapping

from eventlog.envelope import EventEnvelope
from projections.rows import Rows

StatusChange = tuple[str, tuple[str, ...]]
"""The status an event sets, and the event's fields copied into same-named columns."""


def follow_status(
    rows: Rows, table: str, changes: Mapping[str, StatusChange], event: EventEnvelope
) -> None:
    """Apply an event of `changes` to the aggregate's row of `table` (others are ignored)."""
    change = changes.get(event.event_type)
    if change is None:
        return
    status, copied = change
    columns = {name: event.data[name] for name in copied}
    rows.update(
        table,
        {"id": event.aggregate_id},
        set={
            "status": status,
            **columns,
            "version": event.aggregate_version,
            "updated_at": event.timestamp,
        },
        what=f"{table} row {event.aggregate_id}",
    )
