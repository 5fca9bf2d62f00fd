"""`payments`: one row per payment, its status following the provider's outcomes (see
docs/read-models.md). Money in integer cents."""

from uuid import UUID

from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.models.status_rows import StatusChange, follow_status
from projections.rows import Rows
from readmodels.formats import cents
from readmodels.fulfilment_catalog import PAYMENTS

CHANGES: dict[str, StatusChange] = {
    "Authorized": ("authorized", ("reference",)),
    "Declined": ("declined", ("reason",)),
    "CaptureRequested": ("capturing", ()),
    "Captured": ("captured", ()),
    "VoidRequested": ("voiding", ()),
    "Voided": ("voided", ()),
    "RefundRequested": ("refunding", ()),
    "Refunded": ("refunded", ()),
}


class PaymentsLedger(SqlProjection):
    read_model = PAYMENTS

    def project(self, rows: Rows, event: EventEnvelope) -> None:
        if event.aggregate_type != "Payment":
            return
        self.require_schema(event)
        if event.event_type != "Requested":
            follow_status(rows, "payments", CHANGES, event)
            return
        data = event.data
        rows.insert(
            "payments",
            {
                "id": event.aggregate_id,
                "order_id": UUID(data["order_id"]),
                "user_id": UUID(data["user_id"]),
                "amount_cents": cents(data["amount"]),
                "currency": data["currency"],
                "status": "requested",
                "created_at": event.timestamp,
                "updated_at": event.timestamp,
                "version": event.aggregate_version,
            },
        )
