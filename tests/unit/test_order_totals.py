"""Unit tests for an Order's total: the exact Decimal sum of its lines' subtotals, with two
decimal places, as the Placed event records it, and never above MAX_AMOUNT."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.orders.order import Order
from domain.values import MAX_AMOUNT
from tests.support.aggregates import new_order

# totals


def test_total_is_the_sum_of_line_subtotals_as_decimal() -> None:
    order = new_order()
    order.add_line("A", 3, Decimal("0.10"))
    order.add_line("B", 7, Decimal("19.99"))
    order.add_line("C", 1000, Decimal("0.01"))
    total = order.total
    assert isinstance(total, Decimal)
    assert total == Decimal("150.23")
    assert str(total) == "150.23"
    assert order.lines["B"].subtotal == Decimal("139.93")


def test_empty_order_total_is_zero_with_two_places() -> None:
    assert str(new_order().total) == "0.00"


# property: total is the exact Decimal sum

line_strategy = st.tuples(
    st.integers(min_value=1, max_value=1000),  # quantity
    st.integers(min_value=0, max_value=10**14 - 1),  # unit price in cents (<= 12 + 2 digits)
    st.booleans(),  # give whole amounts without decimals where possible
)


@settings(max_examples=150, database=None)
@given(lines=st.lists(line_strategy, max_size=30))
def test_total_equals_exact_sum_of_quantity_times_unit_price(
    lines: list[tuple[int, int, bool]],
) -> None:
    order = new_order()
    expected = Decimal(0)
    expected_cents = 0
    for i, (quantity, cents, whole) in enumerate(lines):
        # Whole amounts sometimes come without decimals ("5"), which the order normalises.
        exact_whole = whole and cents % 100 == 0
        price = Decimal(cents // 100) if exact_whole else Decimal(cents).scaleb(-2)
        if expected_cents + quantity * cents > MAX_AMOUNT * 100:
            with pytest.raises(DomainError, match="above the most an order can total"):
                order.add_line(f"SKU-{i}", quantity, price)
            continue
        order.add_line(f"SKU-{i}", quantity, price)
        expected += quantity * price
        expected_cents += quantity * cents

    total = order.total
    assert isinstance(total, Decimal)
    assert total.as_tuple().exponent == -2
    assert total == expected
    # Also in integer cents, independent of any Decimal context rounding.
    assert total * 100 == expected_cents

    assert total <= MAX_AMOUNT
    if order.lines:
        order.place()
        placed = order.collect_events()[-1]
        assert isinstance(placed, Order.Placed)
        assert placed.total == total
