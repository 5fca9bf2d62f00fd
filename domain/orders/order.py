"""The Order aggregate: draft -> placed -> paid -> shipped, cancellable until shipped."""

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.aggregate import EventSourcedAggregate
from domain.currencies import payment_currency, price_in
from domain.errors import DomainError, InvalidValue
from domain.values import CENT, MAX_AMOUNT, bounded_text

MIN_QUANTITY = 1
MAX_QUANTITY = 1000
MAX_LINES = 100
MAX_SKU_LENGTH = 64
MAX_REASON_LENGTH = 500


class OrderStatus(StrEnum):
    DRAFT = "draft"
    PLACED = "placed"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price: Decimal

    @property
    def subtotal(self) -> Decimal:
        return (self.unit_price * self.quantity).quantize(CENT)


class Order(EventSourcedAggregate):
    """An order placed by one user, priced in one currency."""

    class Created(Aggregate.Created):
        class_version = 1
        user_id: UUID
        currency: str

    class LineAdded(Aggregate.Event):
        class_version = 1
        sku: str
        quantity: int
        unit_price: Decimal

        def apply(self, aggregate: Any) -> None:
            aggregate.lines[self.sku] = OrderLine(self.sku, self.quantity, self.unit_price)

    class LineRemoved(Aggregate.Event):
        class_version = 1
        sku: str

        def apply(self, aggregate: Any) -> None:
            del aggregate.lines[self.sku]

    class Placed(Aggregate.Event):
        class_version = 1
        total: Decimal

        def apply(self, aggregate: Any) -> None:
            aggregate.status = OrderStatus.PLACED

    class Paid(Aggregate.Event):
        class_version = 1
        amount: Decimal

        def apply(self, aggregate: Any) -> None:
            aggregate.status = OrderStatus.PAID

    class Shipped(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = OrderStatus.SHIPPED

    class Cancelled(Aggregate.Event):
        class_version = 1
        reason: str
        previous_status: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = OrderStatus.CANCELLED

    def __init__(self, user_id: UUID, currency: str) -> None:
        self.user_id = user_id
        self.currency = currency
        self.lines: dict[str, OrderLine] = {}
        self.status = OrderStatus.DRAFT

    @classmethod
    def create(cls, user_id: UUID, currency: str) -> "Order":
        return cls._create(cls.Created, user_id=user_id, currency=payment_currency(currency))

    def restore_types(self) -> None:
        self.status = OrderStatus(self.status)  # a StrEnum is stored as its plain string

    @property
    def total(self) -> Decimal:
        return sum((line.subtotal for line in self.lines.values()), Decimal("0.00"))

    def add_line(self, sku: str, quantity: int, unit_price: Decimal) -> None:
        self._require_status(OrderStatus.DRAFT, action="add a line")
        sku = bounded_text(sku, field="sku", max_length=MAX_SKU_LENGTH)
        if not MIN_QUANTITY <= quantity <= MAX_QUANTITY:
            raise InvalidValue(f"quantity must be {MIN_QUANTITY} to {MAX_QUANTITY}, got {quantity}")
        unit_price = price_in(unit_price, self.currency, field="unit_price")
        if sku in self.lines:
            raise DomainError(f"the order already has a line for sku {sku!r}; remove it first")
        if len(self.lines) >= MAX_LINES:
            raise DomainError(f"an order holds at most {MAX_LINES} lines")
        total = self.total + OrderLine(sku, quantity, unit_price).subtotal
        if total > MAX_AMOUNT:
            raise DomainError(
                f"the line would bring the order's total to {total}, above the most an order"
                f" can total, {MAX_AMOUNT}"
            )
        self.trigger_event(self.LineAdded, sku=sku, quantity=quantity, unit_price=unit_price)

    def remove_line(self, sku: str) -> None:
        self._require_status(OrderStatus.DRAFT, action="remove a line")
        if sku not in self.lines:
            raise DomainError(f"the order has no line for sku {sku!r}")
        self.trigger_event(self.LineRemoved, sku=sku)

    def place(self) -> None:
        self._require_status(OrderStatus.DRAFT, action="place it")
        if not self.lines:
            raise DomainError("cannot place an order without lines")
        if self.total > MAX_AMOUNT:  # only a draft whose lines were added before the limit
            raise DomainError(
                f"cannot place an order whose total, {self.total}, is above the most an order"
                f" can total, {MAX_AMOUNT}; remove lines first"
            )
        self.trigger_event(self.Placed, total=self.total)

    def mark_paid(self) -> None:
        self._require_status(OrderStatus.PLACED, action="mark it paid")
        self.trigger_event(self.Paid, amount=self.total)

    def mark_shipped(self) -> None:
        self._require_status(OrderStatus.PAID, action="mark it shipped")
        self.trigger_event(self.Shipped)

    def cancel(self, reason: str) -> None:
        if self.status in (OrderStatus.SHIPPED, OrderStatus.CANCELLED):
            raise DomainError(f"cannot cancel an order that is {self.status}")
        reason = bounded_text(reason, field="reason", max_length=MAX_REASON_LENGTH)
        self.trigger_event(self.Cancelled, reason=reason, previous_status=str(self.status))

    def _require_status(self, required: OrderStatus, *, action: str) -> None:
        if self.status != required:
            raise DomainError(f"cannot {action}: the order is {self.status}, it must be {required}")
