"""The orders context: orders, their commands at /orders.

Creating an order asks the users context whether the user exists and is active, in-process
through its application (`peers`), looked up when the command runs.
"""

from contexts.registry import BoundedContext, Peers
from domain.orders.order import Order
from domain.orders.service import OrdersService
from domain.users.service import UsersService
from write_api.orders import router


def build_orders(env: dict[str, str], *, snapshot_interval: int, peers: Peers) -> OrdersService:
    return OrdersService(
        env=env,
        user_is_active=lambda user_id: peers.application(UsersService).is_active_user(user_id),
        snapshot_interval=snapshot_interval,
    )


ORDERS = BoundedContext(
    name="orders",
    application=OrdersService,
    aggregates=(Order,),
    router=router,
    build=build_orders,
)
