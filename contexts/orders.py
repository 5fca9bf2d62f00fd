"""The orders context: orders, their commands at /orders.

Creating an order needs to know that the user exists and is active. Orders never asks users:
it keeps a replica of that, fed by the users' events (`domain.orders.known_users`).
"""

from contexts.registry import BoundedContext
from domain.orders.known_users import USERS, user_state_after
from domain.orders.order import Order
from domain.orders.service import OrdersService
from eventlog.replicas import Replica
from write_api.orders import router

ORDERS = BoundedContext(
    name="orders",
    application=OrdersService,
    aggregates=(Order,),
    router=router,
    replicas=(Replica(USERS, user_state_after),),
)
