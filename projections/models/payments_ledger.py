"""`payments`: one row per payment, its status following the provider's outcomes (see
docs/read-models.md). Money in integer cents."""

from uuid import UUID

from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.models.status_rows import StatusChange, follow_status
from readmodels.formats import cents
from readmodels.fulfilment_catalog import PAYMENTS
from readmodels.sql import Tx

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

    def apply(self, tx: Tx, event: EventEnvelope) -> None:
        if event.aggregate_type != "Payment":
            return
        self.require_schema(event)
        if event.event_type != "Requested":
            follow_status(tx, "payments", CHANGES, event)
            return
        data = event.data
        tx.execute(
            "INSERT INTO payments (id, order_id, user_id, amount_cents, currency, status,"
            " reference, reason, created_at, updated_at, version)"
            " VALUES (?, ?, ?, ?, ?, 'requested', NULL, NULL, ?, ?, ?)",
            [
                event.aggregate_id,
                UUID(data["order_id"]),
                UUID(data["user_id"]),
                cents(data["amount"]),
                data["currency"],
                event.timestamp,
                event.timestamp,
                event.aggregate_version,
            ],
        )
