"""The orders application: one method per command on orders."""

from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from domain.errors import DomainError, UnknownReference
from domain.orders.known_users import USERS, is_active
from domain.orders.order import Order
from domain.orders.transcodings import OrderLineAsDict, OrderStatusAsStr
from domain.service import CommandContext, CommandResult, CommandService, Decision


class OrdersService(CommandService):
    """Orders ask no other context: what they need of users is in their own replica."""

    name: ClassVar[str] = "orders"  # type: ignore[misc]
    transcodings = (OrderStatusAsStr(), OrderLineAsDict())

    def create_order(self, ctx: CommandContext, user_id: UUID, currency: str) -> CommandResult:
        def decide() -> Decision:
            user = self.replica_state(USERS, user_id)
            if user is None:
                raise UnknownReference(
                    f"orders has not heard of a user with id {user_id}: users reach orders"
                    " through their events, a moment after they register"
                )
            if not is_active(user):
                raise DomainError(f"user {user_id} is deactivated and cannot order")
            return Decision(Order.create(user_id, currency))

        return self.create(ctx, decide)

    def add_line(
        self, ctx: CommandContext, order_id: UUID, sku: str, quantity: int, unit_price: Decimal
    ) -> CommandResult:
        return self.update(ctx, Order, order_id, lambda o: o.add_line(sku, quantity, unit_price))

    def remove_line(self, ctx: CommandContext, order_id: UUID, sku: str) -> CommandResult:
        return self.update(ctx, Order, order_id, lambda o: o.remove_line(sku))

    def place(self, ctx: CommandContext, order_id: UUID) -> CommandResult:
        return self.update(ctx, Order, order_id, lambda o: o.place())

    def mark_paid(self, ctx: CommandContext, order_id: UUID) -> CommandResult:
        return self.update(ctx, Order, order_id, lambda o: o.mark_paid())

    def mark_shipped(self, ctx: CommandContext, order_id: UUID) -> CommandResult:
        return self.update(ctx, Order, order_id, lambda o: o.mark_shipped())

    def cancel(self, ctx: CommandContext, order_id: UUID, reason: str) -> CommandResult:
        return self.update(ctx, Order, order_id, lambda o: o.cancel(reason))

    def order(self, order_id: UUID) -> Order:
        return self.load(Order, order_id)
