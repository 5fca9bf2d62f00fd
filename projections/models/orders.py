"""`orders` and `order_lines` (see docs/read-models.md). Money in integer cents."""

from uuid import UUID

from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.models.rows import change_one
from readmodels import catalog
from readmodels.formats import cents
from readmodels.sql import Tx

_STATUS_CHANGES = {
    "Placed": ("placed", "placed_at"),
    "Paid": ("paid", "paid_at"),
    "Shipped": ("shipped", "shipped_at"),
    "Cancelled": ("cancelled", "cancelled_at"),
}


class Orders(SqlProjection):
    read_model = catalog.ORDERS

    def apply(self, tx: Tx, event: EventEnvelope) -> None:
        if event.aggregate_type != "Order":
            return
        self.require_schema(event)
        order, data = event.aggregate_id, event.data
        match event.event_type:
            case "Created":
                tx.execute(
                    "INSERT INTO orders (id, user_id, currency, status, total_cents, line_count,"
                    " created_at, version) VALUES (?, ?, ?, 'draft', 0, 0, ?, ?)",
                    [
                        order,
                        UUID(data["user_id"]),
                        data["currency"],
                        event.timestamp,
                        event.aggregate_version,
                    ],
                )
            case "LineAdded":
                unit_price = cents(data["unit_price"])
                tx.execute(
                    "INSERT INTO order_lines (order_id, sku, quantity, unit_price_cents)"
                    " VALUES (?, ?, ?, ?)",
                    [order, data["sku"], data["quantity"], unit_price],
                )
                self._change_lines(tx, event, +1, "?", [data["quantity"] * unit_price])
            case "LineRemoved":
                # The line's amount is read by the statement itself: no round trip of its own.
                self._change_lines(
                    tx,
                    event,
                    -1,
                    "-COALESCE((SELECT quantity * unit_price_cents FROM order_lines"
                    " WHERE order_id = ? AND sku = ?), 0)",
                    [order, data["sku"]],
                )
                change_one(
                    tx,
                    "DELETE FROM order_lines WHERE order_id = ? AND sku = ?",
                    [order, data["sku"]],
                    f"line {data['sku']!r} of order {order}",
                )
            case "Placed":
                self._change_status(tx, event, total_cents=cents(data["total"]))
            case "Cancelled":
                self._change_status(tx, event, cancel_reason=data["reason"])
            case "Paid" | "Shipped":
                self._change_status(tx, event)

    @staticmethod
    def _change_lines(
        tx: Tx, event: EventEnvelope, count: int, amount: str, amount_params: list[object]
    ) -> None:
        """Add `count` lines and the SQL expression `amount` to the order's total."""
        change_one(
            tx,
            f"UPDATE orders SET line_count = line_count + ?, total_cents = total_cents + {amount},"  # noqa: S608
            " version = ? WHERE id = ?",
            [count, *amount_params, event.aggregate_version, event.aggregate_id],
            f"order {event.aggregate_id}",
        )

    @staticmethod
    def _change_status(tx: Tx, event: EventEnvelope, **columns: object) -> None:
        status, stamp_column = _STATUS_CHANGES[event.event_type]
        names = [f"{name} = ?" for name in columns]
        change_one(
            tx,
            f"UPDATE orders SET status = ?, {stamp_column} = ?, "  # noqa: S608
            f"{''.join(name + ', ' for name in names)}version = ? WHERE id = ?",
            [
                status,
                event.timestamp,
                *columns.values(),
                event.aggregate_version,
                event.aggregate_id,
            ],
            f"order {event.aggregate_id}",
        )
