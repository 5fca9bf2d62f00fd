"""The registered bounded contexts: one line each. Settings, stores, relays, the write API, the
projector and the embedded fan-out, the read API, replay, the benches, scripts/stack and
compose.yaml (`python -m contexts.generate`) follow; a context's place here sets its ports
(`contexts.deployment`)."""

from contexts.fulfilment import FULFILMENT
from contexts.orders import ORDERS
from contexts.payments import PAYMENTS
from contexts.registry import Registry
from contexts.shipping import SHIPPING
from contexts.users import USERS

REGISTRY = Registry(
    USERS,
    ORDERS,
    PAYMENTS,
    SHIPPING,
    FULFILMENT,
)
