"""A scenario with a poison event, shared by the dead-letter tests: order `bad` gets a line
the poisoned projections refuse, then more events, while order `good` flows beside it."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.envelope import EventEnvelope
from projections.document_ops import Op
from projections.models import Orders, UserStats
from projections.rows import Rows
from tests.support.projections import Scenario, event_stores

POISON_SKU = "POISON"


class PoisonedOrders(Orders):
    """`orders`, raising on lines of the poison SKU while `poisoned` is set."""

    def __init__(self) -> None:
        self.poisoned = True

    def project(self, rows: Rows, event: EventEnvelope) -> None:
        if self.poisoned and event.data.get("sku") == POISON_SKU:
            raise ValueError("poisoned line")
        super().project(rows, event)


class PoisonedUserStats(UserStats):
    """`user_stats` (document operations), raising the same way."""

    def __init__(self) -> None:
        self.poisoned = True

    def operations(self, event: EventEnvelope) -> Sequence[Op]:
        if self.poisoned and event.data.get("sku") == POISON_SKU:
            raise ValueError("poisoned line")
        return super().operations(event)


@contextmanager
def poison_scenario(tmp_path: Path) -> Iterator[Scenario]:
    """Order `bad` gets a poison line, then more events; order `good` is interleaved."""
    with event_stores(tmp_path) as services:
        s = Scenario(services)
        ctx = CommandContext(correlation_id="poison-test")
        user = s.users["ada"] = (
            services.application(UsersService).register(ctx, "Ada", "ada@x.io").id
        )
        orders = services.application(OrdersService)
        bad = s.orders["bad"] = orders.create_order(ctx, user, "EUR").id
        good = s.orders["good"] = orders.create_order(ctx, user, "EUR").id
        orders.add_line(ctx, bad, POISON_SKU, 1, Decimal("5.00"))
        orders.add_line(ctx, good, "G", 1, Decimal("7.00"))
        orders.add_line(ctx, bad, "B", 2, Decimal("1.00"))
        orders.place(ctx, good)
        orders.place(ctx, bad)
        orders.mark_paid(ctx, good)
        yield s
