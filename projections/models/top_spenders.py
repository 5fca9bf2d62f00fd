"""`top_spenders`: sorted set `top:<CUR>`, member user id, score cents spent in that currency
(net of cancellations after payment); `order:<id>` attributes payments to the user."""

from collections.abc import Sequence

from eventlog.envelope import EventEnvelope
from projections.document_ops import IncrementScore, Op, Template, Var
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

TOP = Template(keys.TOP_SPENDERS)
USER = Template("{user_id}")


class TopSpenders(OpsProjection):
    read_model = catalog.TOP_SPENDERS

    def operations(self, event: EventEnvelope) -> Sequence[Op]:
        if event.aggregate_type != "Order":
            return []
        self.require_schema(event)
        match event.event_type:
            case "Created":
                return [remember_order(event)]
            case "Paid":
                return [
                    recall_order(event),
                    IncrementScore(TOP, USER, paid_cents(event)),
                    remember_payment(event),
                ]
            case "Cancelled" if is_refund(event):
                return [
                    recall_order(event, with_payment=True),
                    IncrementScore(TOP, USER, Var("paid_cents", negate=True)),
                    forget_payment(event),
                ]
        return []
