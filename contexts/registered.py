"""The registered bounded contexts: one line each. Settings, stores, relays, the write API,
replay, the benches and the generated deployment files (`python -m contexts.generate`) follow."""

from contexts.orders import ORDERS
from contexts.registry import Registry
from contexts.users import USERS

REGISTRY = Registry(
    USERS,
    ORDERS,
)
