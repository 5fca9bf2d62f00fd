"""Unit tests for an Order's lifecycle state machine: draft, placed, paid, shipped, or
cancelled before shipping; an invalid transition names the current state; and random commands
against a reference model."""

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.errors import DomainError, InvalidValue
from domain.orders.order import Order, OrderStatus
from domain.values import MAX_AMOUNT
from tests.support.aggregates import new_order


def status_of(order: Order) -> OrderStatus:
    """The order's status now: a call, so a type checker keeps no earlier check of
    `order.status` across the transition in between."""
    return order.status


def order_in(status: OrderStatus) -> Order:
    """A fresh order brought to the given status through the public commands."""
    order = new_order()
    order.add_line("SKU-1", 2, Decimal("9.99"))
    if status is OrderStatus.CANCELLED:
        order.cancel("changed my mind")
    if status in (OrderStatus.PLACED, OrderStatus.PAID, OrderStatus.SHIPPED):
        order.place()
    if status in (OrderStatus.PAID, OrderStatus.SHIPPED):
        order.mark_paid()
    if status is OrderStatus.SHIPPED:
        order.mark_shipped()
    assert order.status is status
    order.collect_events()
    return order


# lifecycle


def test_happy_path_draft_placed_paid_shipped() -> None:
    order = new_order()
    order.add_line("A", 2, Decimal("5.25"))
    order.place()
    assert order.status is OrderStatus.PLACED
    order.mark_paid()
    assert status_of(order) is OrderStatus.PAID
    order.mark_shipped()
    assert status_of(order) is OrderStatus.SHIPPED

    events = order.collect_events()
    assert [type(e) for e in events] == [
        Order.LineAdded,
        Order.Placed,
        Order.Paid,
        Order.Shipped,
    ]
    placed, paid = events[1], events[2]
    assert isinstance(placed, Order.Placed)
    assert isinstance(paid, Order.Paid)
    assert placed.total == Decimal("10.50")
    assert paid.amount == Decimal("10.50")
    assert order.version == 5


def test_place_requires_at_least_one_line() -> None:
    order = new_order()
    with pytest.raises(DomainError) as caught:
        order.place()
    assert str(caught.value) == "cannot place an order without lines"
    assert order.status is OrderStatus.DRAFT


def test_place_after_all_lines_were_removed_is_rejected() -> None:
    order = new_order()
    order.add_line("A", 1, Decimal("1.00"))
    order.remove_line("A")
    with pytest.raises(DomainError, match="without lines"):
        order.place()


def test_place_refuses_a_draft_whose_lines_total_more_than_can_be_paid() -> None:
    # Such a draft has lines added before add_line refused them: its events are replayed as
    # they were recorded, so the order is placed only once enough lines are removed.
    order = new_order()
    order.trigger_event(Order.LineAdded, sku="A", quantity=1000, unit_price=MAX_AMOUNT)
    order.trigger_event(Order.LineAdded, sku="B", quantity=1, unit_price=Decimal("1.00"))
    order.collect_events()
    with pytest.raises(DomainError) as caught:
        order.place()
    assert str(caught.value) == (
        "cannot place an order whose total, 999999999999991.00, is above the most an order"
        " can total, 999999999999.99; remove lines first"
    )
    assert order.status is OrderStatus.DRAFT
    assert len(order.collect_events()) == 0
    order.remove_line("A")
    order.place()
    assert status_of(order) is OrderStatus.PLACED


@pytest.mark.parametrize("status", [OrderStatus.DRAFT, OrderStatus.PLACED, OrderStatus.PAID])
def test_cancel_is_allowed_before_shipping(status: OrderStatus) -> None:
    order = order_in(status)
    order.cancel("  customer asked  ")
    assert order.status is OrderStatus.CANCELLED
    events = order.collect_events()
    assert len(events) == 1
    (cancelled,) = events
    assert isinstance(cancelled, Order.Cancelled)
    assert cancelled.reason == "customer asked"
    assert cancelled.previous_status == status.value


@pytest.mark.parametrize("status", [OrderStatus.SHIPPED, OrderStatus.CANCELLED])
def test_cancel_is_rejected_once_shipped_or_cancelled(status: OrderStatus) -> None:
    order = order_in(status)
    with pytest.raises(DomainError) as caught:
        order.cancel("too late")
    assert str(caught.value) == f"cannot cancel an order that is {status.value}"
    assert order.status is status
    assert len(order.collect_events()) == 0


@pytest.mark.parametrize(("reason", "length"), [("", 0), ("   ", 0), ("r" * 501, 501)])
def test_cancel_requires_a_reason_of_1_to_500_characters(reason: str, length: int) -> None:
    order = order_in(OrderStatus.PLACED)
    with pytest.raises(InvalidValue, match=f"^reason must be 1 to 500 characters, got {length}$"):
        order.cancel(reason)
    assert order.status is OrderStatus.PLACED


def test_cancel_accepts_a_500_character_reason() -> None:
    order = order_in(OrderStatus.DRAFT)
    order.cancel("r" * 500)
    assert order.status is OrderStatus.CANCELLED


ACTIONS: dict[str, tuple[Callable[[Order], None], set[OrderStatus]]] = {
    # action -> (command, statuses in which it is allowed)
    "add_line": (lambda o: o.add_line("SKU-2", 1, Decimal("1.00")), {OrderStatus.DRAFT}),
    "remove_line": (lambda o: o.remove_line("SKU-1"), {OrderStatus.DRAFT}),
    "place": (lambda o: o.place(), {OrderStatus.DRAFT}),
    "mark_paid": (lambda o: o.mark_paid(), {OrderStatus.PLACED}),
    "mark_shipped": (lambda o: o.mark_shipped(), {OrderStatus.PAID}),
}

INVALID_TRANSITIONS = [
    (name, status)
    for name, (_, allowed) in ACTIONS.items()
    for status in OrderStatus
    if status not in allowed
]


@pytest.mark.parametrize(
    ("action", "status"), INVALID_TRANSITIONS, ids=[f"{a}-in-{s}" for a, s in INVALID_TRANSITIONS]
)
def test_invalid_transition_names_the_current_state(action: str, status: OrderStatus) -> None:
    command, allowed = ACTIONS[action]
    order = order_in(status)
    with pytest.raises(DomainError) as caught:
        command(order)
    message = str(caught.value)
    assert f"the order is {status.value}" in message
    (required,) = allowed
    assert f"it must be {required.value}" in message
    assert order.status is status
    assert len(order.collect_events()) == 0


@pytest.mark.parametrize(("action", "allowed"), [(a, s) for a, (_, s) in ACTIONS.items()])
def test_valid_transition_succeeds(action: str, allowed: set[OrderStatus]) -> None:
    command, _ = ACTIONS[action]
    (status,) = allowed
    order = order_in(status)
    command(order)
    assert len(order.collect_events()) == 1


def test_state_is_checked_before_input_validation() -> None:
    order = order_in(OrderStatus.PLACED)
    with pytest.raises(DomainError, match="the order is placed") as caught:
        order.add_line("", 0, Decimal("-1"))
    assert not isinstance(caught.value, InvalidValue)


# property: lifecycle against a reference model

SKUS = ("A", "B", "C")


class OrderLifecycle(RuleBasedStateMachine):
    """Drives one Order with random commands and compares it with a tiny reference model."""

    def __init__(self) -> None:
        super().__init__()
        self.order = new_order()
        self.status = "draft"
        self.lines: dict[str, int] = {}  # sku -> subtotal in cents
        self.version = 1

    def expect(self, allowed: bool, rejected_for_state: bool, command: Callable[[], None]) -> None:
        if allowed:
            command()
            self.version += 1
            return
        with pytest.raises(DomainError) as caught:
            command()
        if rejected_for_state:
            assert f"is {self.status}" in str(caught.value)

    @rule(
        sku=st.sampled_from(SKUS),
        quantity=st.integers(min_value=-1, max_value=1001),
        cents=st.integers(min_value=0, max_value=10**6),
    )
    def add_line(self, sku: str, quantity: int, cents: int) -> None:
        wrong_state = self.status != "draft"
        allowed = not wrong_state and 1 <= quantity <= 1000 and sku not in self.lines
        self.expect(
            allowed,
            wrong_state,
            lambda: self.order.add_line(sku, quantity, Decimal(cents).scaleb(-2)),
        )
        if allowed:
            self.lines[sku] = quantity * cents

    @rule(sku=st.sampled_from(SKUS))
    def remove_line(self, sku: str) -> None:
        wrong_state = self.status != "draft"
        allowed = not wrong_state and sku in self.lines
        self.expect(allowed, wrong_state, lambda: self.order.remove_line(sku))
        if allowed:
            del self.lines[sku]

    @rule()
    def place(self) -> None:
        wrong_state = self.status != "draft"
        allowed = not wrong_state and bool(self.lines)
        self.expect(allowed, wrong_state, self.order.place)
        if allowed:
            self.status = "placed"

    @rule()
    def mark_paid(self) -> None:
        allowed = self.status == "placed"
        self.expect(allowed, not allowed, self.order.mark_paid)
        if allowed:
            self.status = "paid"

    @rule()
    def mark_shipped(self) -> None:
        allowed = self.status == "paid"
        self.expect(allowed, not allowed, self.order.mark_shipped)
        if allowed:
            self.status = "shipped"

    @rule(reason=st.sampled_from(["out of stock", "  ", "", "customer request"]))
    def cancel(self, reason: str) -> None:
        wrong_state = self.status in ("shipped", "cancelled")
        allowed = not wrong_state and bool(reason.strip())
        self.expect(allowed, wrong_state, lambda: self.order.cancel(reason))
        if allowed:
            self.status = "cancelled"

    @invariant()
    def matches_model(self) -> None:
        assert self.order.status == self.status
        assert self.order.version == self.version
        assert len(self.order.pending_events) == self.version - 1
        assert sorted(self.order.lines) == sorted(self.lines)
        assert self.order.total * 100 == sum(self.lines.values())


OrderLifecycle.TestCase.settings = settings(
    max_examples=150, stateful_step_count=25, database=None, deadline=None
)
TestOrderLifecycle = OrderLifecycle.TestCase
