"""The orders application: one method per command on orders."""

import logging
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from domain.errors import DomainError, UnknownReference
from domain.orders.known_users import USERS, is_active
from domain.orders.order import Order
from domain.orders.transcodings import OrderLineAsDict, OrderStatusAsStr
from domain.ports import Claim
from domain.service import ClaimChanges, CommandContext, CommandResult, CommandService, Decision

log = logging.getLogger("strata.domain.orders")


def open_order_claim(user_id: UUID, order_id: UUID) -> Claim:
    """Held by each order of a user until it is paid or cancelled: the user's open orders."""
    return Claim(open_orders_scope(user_id), str(order_id), order_id)


def open_orders_scope(user_id: UUID) -> str:
    return f"open-orders-of:{user_id}"


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
            order = Order.create(user_id, currency)
            return Decision(order, ClaimChanges(take=[open_order_claim(user_id, order.id)]))

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
        def pay(order: Order) -> ClaimChanges:
            order.mark_paid()
            return ClaimChanges(release=[open_order_claim(order.user_id, order.id)])

        return self.update(ctx, Order, order_id, pay)

    def mark_shipped(self, ctx: CommandContext, order_id: UUID) -> CommandResult:
        return self.update(ctx, Order, order_id, lambda o: o.mark_shipped())

    def cancel(self, ctx: CommandContext, order_id: UUID, reason: str) -> CommandResult:
        def cancel(order: Order) -> ClaimChanges:
            order.cancel(reason)
            return ClaimChanges(release=[open_order_claim(order.user_id, order.id)])

        return self.update(ctx, Order, order_id, cancel)

    def open_orders_of(self, user_id: UUID) -> list[UUID]:
        """The user's orders not yet paid nor cancelled."""
        return [UUID(value) for value in self.side_records.claimed(open_orders_scope(user_id))]

    def cancel_open_orders_of(self, user_id: UUID, reason: str, cause: str) -> list[UUID]:
        """Cancel each of the user's open orders, once per `cause` (the idempotency key of each
        cancellation names it), and say which were cancelled. An order paid in the meantime is
        left as it is."""
        cancelled = []
        for order_id in self.open_orders_of(user_id):
            key = f"{cause}:{order_id}"
            ctx = CommandContext(idempotency_key=key, fingerprint=key, causation_id=cause)
            try:
                self.cancel(ctx, order_id, reason)
            except DomainError as refused:
                log.info("order %s of user %s stays: %s", order_id, user_id, refused)
            else:
                cancelled.append(order_id)
        return cancelled

    def order(self, order_id: UUID) -> Order:
        return self.load(Order, order_id)
