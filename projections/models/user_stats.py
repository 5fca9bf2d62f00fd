"""`user_stats`: `stats:<user id>` with `orders` (count created) and `spent:<CUR>` (cents paid,
net of cancellations after payment); `order:<id>` attributes later events to the user."""

from collections.abc import Sequence

from eventlog.envelope import EventEnvelope
from projections.document_ops import IncrementField, Op, Template, Var
from projections.model import OpsProjection
from projections.models.attribution import (
    forget_payment,
    is_refund,
    paid_cents,
    recall_order,
    remember_order,
    remember_payment,
)
from readmodels import catalog, keys

STATS = Template(keys.USER_STATS)
SPENT = Template(keys.SPENT_FIELD)


class UserStats(OpsProjection):
    read_model = catalog.USER_STATS

    def operations(self, event: EventEnvelope) -> Sequence[Op]:
        if event.aggregate_type != "Order":
            return []
        self.require_schema(event)
        match event.event_type:
            case "Created":
                user_stats = keys.user_stats_key(event.data["user_id"])
                return [remember_order(event), IncrementField(user_stats, "orders", 1)]
            case "Paid":
                return [
                    recall_order(event),
                    IncrementField(STATS, SPENT, paid_cents(event)),
                    remember_payment(event),
                ]
            case "Cancelled" if is_refund(event):
                return [
                    recall_order(event, with_payment=True),
                    IncrementField(STATS, SPENT, Var("paid_cents", negate=True)),
                    forget_payment(event),
                ]
        return []
