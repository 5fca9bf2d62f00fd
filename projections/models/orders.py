"""`orders` and `order_lines` (see docs/read-models.md). Money in integer cents."""

from uuid import UUID

from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.rows import Amount, Lookup, Rows
from readmodels import catalog
from readmodels.formats import cents

_STATUS_CHANGES = {
    "Placed": ("placed", "placed_at"),
    "Paid": ("paid", "paid_at"),
    "Shipped": ("shipped", "shipped_at"),
    "Cancelled": ("cancelled", "cancelled_at"),
}


class Orders(SqlProjection):
    read_model = catalog.ORDERS

    def project(self, rows: Rows, event: EventEnvelope) -> None:
        if event.aggregate_type != "Order":
            return
        self.require_schema(event)
        order, data = event.aggregate_id, event.data
        match event.event_type:
            case "Created":
                rows.insert(
                    "orders",
                    {
                        "id": order,
                        "user_id": UUID(data["user_id"]),
                        "currency": data["currency"],
                        "status": "draft",
                        "total_cents": 0,
                        "line_count": 0,
                        "created_at": event.timestamp,
                        "version": event.aggregate_version,
                    },
                )
            case "LineAdded":
                unit_price = cents(data["unit_price"])
                rows.insert(
                    "order_lines",
                    {
                        "order_id": order,
                        "sku": data["sku"],
                        "quantity": data["quantity"],
                        "unit_price_cents": unit_price,
                    },
                )
                self._change_lines(rows, event, +1, data["quantity"] * unit_price)
            case "LineRemoved":
                line = {"order_id": order, "sku": data["sku"]}
                what = f"line {data['sku']!r} of order {order}"
                # The line's amount is read by the write itself, before the line goes.
                columns = ("quantity", "unit_price_cents")
                amount = Lookup("order_lines", line, columns, sign=-1, what=what)
                self._change_lines(rows, event, -1, amount)
                rows.delete("order_lines", line, what=what)
            case "Placed":
                self._change_status(rows, event, total_cents=cents(data["total"]))
            case "Cancelled":
                self._change_status(rows, event, cancel_reason=data["reason"])
            case "Paid" | "Shipped":
                self._change_status(rows, event)

    @staticmethod
    def _change_lines(rows: Rows, event: EventEnvelope, count: int, amount: Amount) -> None:
        rows.update(
            "orders",
            {"id": event.aggregate_id},
            set={"version": event.aggregate_version},
            add={"line_count": count, "total_cents": amount},
            what=f"order {event.aggregate_id}",
        )

    @staticmethod
    def _change_status(rows: Rows, event: EventEnvelope, **columns: object) -> None:
        status, stamp_column = _STATUS_CHANGES[event.event_type]
        rows.update(
            "orders",
            {"id": event.aggregate_id},
            set={
                "status": status,
                stamp_column: event.timestamp,
                **columns,
                "version": event.aggregate_version,
            },
            what=f"order {event.aggregate_id}",
        )
