"""`daily_sales`: payments and refunds per UTC day and currency, in cents.

A payment counts on the day of its `Paid` event; cancelling a paid order counts a refund of the
amount paid on the day of the `Cancelled` event. `daily_sales_orders` (internal) remembers each
order's currency and amount paid, which those events do not carry.
"""

from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.models.attribution import is_refund
from projections.models.rows import change_one
from readmodels import catalog
from readmodels.formats import cents, utc_day
from readmodels.sql import Tx

_ADD = (
    "INSERT INTO daily_sales (day, currency, orders_paid, paid_cents, orders_refunded,"
    " refunded_cents) SELECT ?, currency, {paid} FROM daily_sales_orders WHERE order_id = ?"
    " ON CONFLICT (day, currency) DO UPDATE SET"
    " orders_paid = daily_sales.orders_paid + excluded.orders_paid,"
    " paid_cents = daily_sales.paid_cents + excluded.paid_cents,"
    " orders_refunded = daily_sales.orders_refunded + excluded.orders_refunded,"
    " refunded_cents = daily_sales.refunded_cents + excluded.refunded_cents"
)
"""Count into the day an order's payment or refund, in the currency the order was created in
(read by the statement itself: no round trip of its own)."""
_ADD_PAYMENT = _ADD.format(paid="1, ?, 0, 0")
_ADD_REFUND = _ADD.format(paid="0, 0, 1, paid_cents")


class DailySales(SqlProjection):
    read_model = catalog.DAILY_SALES

    def apply(self, tx: Tx, event: EventEnvelope) -> None:
        if event.aggregate_type != "Order":
            return
        self.require_schema(event)
        order, day = event.aggregate_id, utc_day(event.timestamp)
        match event.event_type:
            case "Created":
                tx.execute(
                    "INSERT INTO daily_sales_orders (order_id, currency, paid_cents)"
                    " VALUES (?, ?, 0)",
                    [order, event.data["currency"]],
                )
            case "Paid":
                amount = cents(event.data["amount"])
                change_one(tx, _ADD_PAYMENT, [day, amount, order], _order_row(event))
                self._remember(tx, event, amount)
            case "Cancelled" if is_refund(event):
                change_one(tx, _ADD_REFUND, [day, order], _order_row(event))
                self._remember(tx, event, 0)

    @staticmethod
    def _remember(tx: Tx, event: EventEnvelope, paid_cents: int) -> None:
        change_one(
            tx,
            "UPDATE daily_sales_orders SET paid_cents = ? WHERE order_id = ?",
            [paid_cents, event.aggregate_id],
            _order_row(event),
        )


def _order_row(event: EventEnvelope) -> str:
    return f"order {event.aggregate_id} in daily_sales_orders"
