"""The ids of an order's fulfilment and of what it asks the participants to create.

Each id is a name-based UUID (version 5) of the order id, so every process that sees the order
derives the same ids with no lookup: the saga finds its aggregate from any event that names the
order, and a command resent after a crash names the same payment or shipment again.
"""

from uuid import UUID, uuid5

NAMESPACE = UUID("2a4c2c98-4212-4b01-8445-d479bb8f807e")
"""The namespace of the fulfilment ids. Changing it would orphan every stored saga: keep it."""


def saga_id(order_id: UUID) -> UUID:
    """The id of the order's `OrderFulfilment`."""
    return uuid5(NAMESPACE, f"fulfilment:{order_id}")


def payment_id(order_id: UUID) -> UUID:
    """The id of the order's payment in the payments context."""
    return uuid5(NAMESPACE, f"payment:{order_id}")


def shipment_id(order_id: UUID) -> UUID:
    """The id of the order's shipment in the shipping context."""
    return uuid5(NAMESPACE, f"shipment:{order_id}")
