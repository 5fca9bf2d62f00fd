"""The orders context: orders, their commands at /orders, the read models of the orders' events
(orders, daily sales, each user's stats, the top spenders) and the read endpoints of orders and
sales.

Creating an order needs to know that the user exists and is active. Orders never asks users:
it keeps a replica of that, fed by the users' events (`domain.orders.known_users`). It also
reacts to them: a user's deactivation cancels that user's orders not yet paid (choreography).
"""

from contexts.registry import BoundedContext, merged_router
from domain.orders.known_users import (
    DEACTIVATION,
    USER_STATE_KINDS,
    USERS,
    is_deactivation,
    user_state_after,
)
from domain.orders.order import Order
from domain.orders.service import OrdersService
from domain.service import CommandService
from eventlog.envelope import EventEnvelope
from eventlog.reactions import Reaction
from eventlog.replicas import Replica
from projections.models.daily_sales import DailySales
from projections.models.orders import Orders
from projections.models.top_spenders import TopSpenders
from projections.models.user_stats import UserStats
from read_api import order_endpoints, sales_endpoints
from write_api.orders import router


def cancel_open_orders_of_deactivated_users(orders: CommandService, event: EventEnvelope) -> None:
    if is_deactivation(event.aggregate_type, event.event_type):
        assert isinstance(orders, OrdersService)
        orders.cancel_open_orders_of(
            event.aggregate_id,
            reason="the user was deactivated",
            cause=f"{event.context}:{event.position}",
        )


ORDERS = BoundedContext(
    name="orders",
    application=OrdersService,
    aggregates=(Order,),
    router=router,
    replicas=(Replica(USERS, user_state_after, USER_STATE_KINDS),),
    reactions=(
        Reaction(
            USERS,
            "deactivations",
            cancel_open_orders_of_deactivated_users,
            frozenset({DEACTIVATION}),
        ),
    ),
    projections=(Orders, DailySales, UserStats, TopSpenders),
    read_router=merged_router(order_endpoints.router, sales_endpoints.router),
)
