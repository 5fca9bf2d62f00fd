"""Transcodings for the orders context's own types, so snapshots of orders can be stored."""

from decimal import Decimal
from typing import Any

from eventsourcing.persistence import Transcoding

from domain.orders.order import OrderLine, OrderStatus


class OrderStatusAsStr(Transcoding):
    """Unused while `OrderStatus` is a `StrEnum`: JSON writes it as a plain string without asking
    the transcoder, and `Order.restore_types` turns it back into a member after a snapshot."""

    type = OrderStatus
    name = "order_status"

    def encode(self, obj: OrderStatus) -> str:
        return obj.value

    def decode(self, data: str) -> OrderStatus:
        return OrderStatus(data)


class OrderLineAsDict(Transcoding):
    type = OrderLine
    name = "order_line"

    def encode(self, obj: OrderLine) -> dict[str, Any]:
        return {"sku": obj.sku, "quantity": obj.quantity, "unit_price": str(obj.unit_price)}

    def decode(self, data: dict[str, Any]) -> OrderLine:
        return OrderLine(data["sku"], data["quantity"], Decimal(data["unit_price"]))
