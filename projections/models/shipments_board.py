"""`shipments`: one row per shipment, its status following the carrier's outcomes (see
docs/read-models.md)."""

from uuid import UUID

from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.models.status_rows import StatusChange, follow_status
from readmodels.fulfilment_catalog import SHIPMENTS
from readmodels.sql import Tx

CHANGES: dict[str, StatusChange] = {
    "Scheduled": ("scheduled", ("carrier", "reference")),
    "Failed": ("failed", ("reason",)),
    "DispatchRequested": ("dispatching", ()),
    "Dispatched": ("dispatched", ()),
    "Delivered": ("delivered", ()),
    "CancelWanted": ("requested", ()),  # still awaiting the booking, to be cancelled then
    "CancelRequested": ("cancelling", ()),
    "Cancelled": ("cancelled", ()),
}


class ShipmentsBoard(SqlProjection):
    read_model = SHIPMENTS

    def apply(self, tx: Tx, event: EventEnvelope) -> None:
        if event.aggregate_type != "Shipment":
            return
        self.require_schema(event)
        if event.event_type != "Requested":
            follow_status(tx, "shipments", CHANGES, event)
            return
        tx.execute(
            "INSERT INTO shipments (id, order_id, user_id, status, carrier, reference, reason,"
            " created_at, updated_at, version) VALUES (?, ?, ?, 'requested', NULL, NULL, NULL,"
            " ?, ?, ?)",
            [
                event.aggregate_id,
                UUID(event.data["order_id"]),
                UUID(event.data["user_id"]),
                event.timestamp,
                event.timestamp,
                event.aggregate_version,
            ],
        )
