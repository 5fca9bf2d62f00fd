"""The registered bounded contexts: one line each. Settings, stores, relays, the write API, the
projector and the embedded fan-out, the read API, replay, the benches, scripts/stack and
compose.yaml (`python -m contexts.generate`) follow; a context's place here sets its ports
(`contexts.deployment`)."""

from contexts.orders import ORDERS
from contexts.registry import Registry
from contexts.users import USERS

REGISTRY = Registry(
    USERS,
    ORDERS,
)
