"""`shipments`: one row per shipment, its status following the carrier's outcomes (see
docs/read-models.md)."""

from uuid import UUID

from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.models.status_rows import StatusChange, follow_status
from projections.rows import Rows
from readmodels.fulfilment_catalog import SHIPMENTS

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

    def project(self, rows: Rows, event: EventEnvelope) -> None:
        if event.aggregate_type != "Shipment":
            return
        self.require_schema(event)
        if event.event_type != "Requested":
            follow_status(rows, "shipments", CHANGES, event)
            return
        rows.insert(
            "shipments",
            {
                "id": event.aggregate_id,
                "order_id": UUID(event.data["order_id"]),
                "user_id": UUID(event.data["user_id"]),
                "status": "requested",
                "created_at": event.timestamp,
                "updated_at": event.timestamp,
                "version": event.aggregate_version,
            },
        )
