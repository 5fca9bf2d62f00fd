"""The orders application: one method per command on orders."""

from collections.abc import Callable
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from domain.errors import DomainError
from domain.orders.order import Order
from domain.orders.transcodings import OrderLineAsDict, OrderStatusAsStr
from domain.service import (
    DEFAULT_SNAPSHOT_INTERVAL,
    CommandContext,
    CommandResult,
    CommandService,
    Decision,
)

UserIsActive = Callable[[UUID], bool | None]
"""Answers True/False for an existing user, None for an unknown one."""


class OrdersService(CommandService):
    name: ClassVar[str] = "orders"  # type: ignore[misc]
    transcodings = (OrderStatusAsStr(), OrderLineAsDict())

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        user_is_active: UserIsActive,
        snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
    ) -> None:
        super().__init__(env, snapshot_interval=snapshot_interval)
        self._user_is_active = user_is_active

    def create_order(self, ctx: CommandContext, user_id: UUID, currency: str) -> CommandResult:
        def decide() -> Decision:
            active = self._user_is_active(user_id)
            if active is None:
                raise DomainError(f"no user with id {user_id}")
            if not active:
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
