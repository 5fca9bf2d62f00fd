"""`daily_sales`: payments and refunds per UTC day and currency, in cents.

A payment counts on the day of its `Paid` event; cancelling a paid order counts a refund of the
amount paid on the day of the `Cancelled` event. `daily_sales_orders` (internal) remembers each
order's currency and amount paid, which those events do not carry.
"""

from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.models.attribution import is_refund
from projections.rows import Amount, Lookup, Rows
from readmodels import catalog
from readmodels.formats import cents, utc_day


class DailySales(SqlProjection):
    read_model = catalog.DAILY_SALES

    def project(self, rows: Rows, event: EventEnvelope) -> None:
        if event.aggregate_type != "Order":
            return
        self.require_schema(event)
        order = {"order_id": event.aggregate_id}
        what = f"order {event.aggregate_id} in daily_sales_orders"

        def remembered(column: str) -> Lookup:
            """What `daily_sales_orders` holds of the order, read inside the write."""
            return Lookup("daily_sales_orders", order, (column,), what=what)

        match event.event_type:
            case "Created":
                row = {**order, "currency": event.data["currency"], "paid_cents": 0}
                rows.insert("daily_sales_orders", row)
            case "Paid":
                amount = cents(event.data["amount"])
                rows.update("daily_sales_orders", order, set={"paid_cents": amount}, what=what)
                self._add(rows, event, remembered("currency"), paid=(1, amount))
            case "Cancelled" if is_refund(event):
                # The amount paid is read by the write itself, before it is forgotten.
                self._add(
                    rows, event, remembered("currency"), refunded=(1, remembered("paid_cents"))
                )
                rows.update("daily_sales_orders", order, set={"paid_cents": 0}, what=what)

    @staticmethod
    def _add(
        rows: Rows,
        event: EventEnvelope,
        currency: Lookup,
        paid: tuple[int, Amount] = (0, 0),
        refunded: tuple[int, Amount] = (0, 0),
    ) -> None:
        rows.accumulate(
            "daily_sales",
            {"day": utc_day(event.timestamp), "currency": currency},
            {
                "orders_paid": paid[0],
                "paid_cents": paid[1],
                "orders_refunded": refunded[0],
                "refunded_cents": refunded[1],
            },
        )
