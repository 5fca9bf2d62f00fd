"""`daily_sales`: payments and refunds per UTC day and currency, in cents.

A payment counts on the day of its `Paid` event; cancelling a paid order counts a refund of the
amount paid on the day of the `Cancelled` event. `daily_sales_orders` (internal) remembers each
order's currency and amount paid, which those events do not carry.
"""

from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.models.attribution import is_refund
from projections.models.rows import change_one, fetch_one
from readmodels import catalog
from readmodels.formats import cents, utc_day
from readmodels.sql import Tx

_ADD = (
    "INSERT INTO daily_sales (day, currency, orders_paid, paid_cents, orders_refunded,"
    " refunded_cents) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (day, currency) DO UPDATE SET"
    " orders_paid = daily_sales.orders_paid + excluded.orders_paid,"
    " paid_cents = daily_sales.paid_cents + excluded.paid_cents,"
    " orders_refunded = daily_sales.orders_refunded + excluded.orders_refunded,"
    " refunded_cents = daily_sales.refunded_cents + excluded.refunded_cents"
)


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
                (currency,) = fetch_one(
                    tx,
                    "SELECT currency FROM daily_sales_orders WHERE order_id = ?",
                    [order],
                    f"order {order} in daily_sales_orders",
                )
                self._remember(tx, event, amount)
                tx.execute(_ADD, [day, currency, 1, amount, 0, 0])
            case "Cancelled" if is_refund(event):
                currency, paid = fetch_one(
                    tx,
                    "SELECT currency, paid_cents FROM daily_sales_orders WHERE order_id = ?",
                    [order],
                    f"order {order} in daily_sales_orders",
                )
                self._remember(tx, event, 0)
                tx.execute(_ADD, [day, currency, 0, 0, 1, int(paid)])

    @staticmethod
    def _remember(tx: Tx, event: EventEnvelope, paid_cents: int) -> None:
        change_one(
            tx,
            "UPDATE daily_sales_orders SET paid_cents = ? WHERE order_id = ?",
            [paid_cents, event.aggregate_id],
            f"order {event.aggregate_id} in daily_sales_orders",
        )
