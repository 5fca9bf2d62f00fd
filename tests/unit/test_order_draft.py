"""Unit tests for a draft Order: creating it (user and ISO 4217 currency) and adding and
removing its lines (quantity, unit price and SKU bounds, one line a SKU, at most 100 lines)."""

from decimal import Decimal
from uuid import uuid4

import pytest

from domain.errors import DomainError, InvalidValue
from domain.orders.order import MAX_LINES, Order, OrderLine, OrderStatus
from domain.values import MAX_AMOUNT
from tests.support.aggregates import collected, new_order

# create


def test_create_records_user_and_currency_and_starts_as_draft() -> None:
    user_id = uuid4()
    order = Order.create(user_id, "EUR")
    assert order.user_id == user_id
    assert order.currency == "EUR"
    assert order.status is OrderStatus.DRAFT
    assert order.lines == {}
    assert order.total == Decimal("0.00")
    events = order.collect_events()
    assert len(events) == 1
    assert isinstance(events[0], Order.Created)
    assert events[0].user_id == user_id
    assert events[0].currency == "EUR"


@pytest.mark.parametrize(("given", "expected"), [("eur", "EUR"), (" usd ", "USD"), ("Jpy", "JPY")])
def test_create_normalises_currency(given: str, expected: str) -> None:
    order = Order.create(uuid4(), given)
    assert order.currency == expected
    created = collected(order)[0]
    assert isinstance(created, Order.Created)
    assert created.currency == expected


@pytest.mark.parametrize("currency", ["ABC", "EURO", "EU", "", "€€€"])
def test_create_rejects_non_iso4217_currency(currency: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        Order.create(uuid4(), currency)
    assert str(caught.value) == f"currency {currency!r} is not an ISO 4217 code"


# lines


def test_add_line_records_a_normalised_line() -> None:
    order = new_order()
    order.add_line("  SKU-1 ", 3, Decimal("2.5"))
    assert order.lines == {"SKU-1": OrderLine("SKU-1", 3, Decimal("2.50"))}
    events = order.collect_events()
    assert len(events) == 1
    (added,) = events
    assert isinstance(added, Order.LineAdded)
    assert (added.sku, added.quantity) == ("SKU-1", 3)
    assert str(added.unit_price) == "2.50"


@pytest.mark.parametrize("quantity", [1, 1000])
def test_add_line_accepts_quantity_bounds(quantity: int) -> None:
    order = new_order()
    order.add_line("SKU-1", quantity, Decimal("1.00"))
    assert order.lines["SKU-1"].quantity == quantity


@pytest.mark.parametrize("quantity", [0, -1, 1001])
def test_add_line_rejects_quantity_out_of_bounds(quantity: int) -> None:
    order = new_order()
    with pytest.raises(InvalidValue) as caught:
        order.add_line("SKU-1", quantity, Decimal("1.00"))
    assert str(caught.value) == f"quantity must be 1 to 1000, got {quantity}"
    assert order.lines == {}
    assert len(order.collect_events()) == 0


def test_add_line_accepts_a_free_item() -> None:
    order = new_order()
    order.add_line("GIFT", 1, Decimal("0"))
    assert order.lines["GIFT"].unit_price == Decimal("0.00")
    assert order.total == Decimal("0.00")


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ("-0.01", "unit_price must be a non-negative amount, got -0.01"),
        ("NaN", "unit_price must be a non-negative amount, got NaN"),
        ("Infinity", "unit_price must be a non-negative amount, got Infinity"),
        ("1.005", "unit_price may have at most 2 decimal places, got 1.005"),
        ("1E+30", "unit_price is too large, got 1E+30"),
    ],
)
def test_add_line_rejects_invalid_unit_price(price: str, message: str) -> None:
    order = new_order()
    with pytest.raises(InvalidValue) as caught:
        order.add_line("SKU-1", 1, Decimal(price))
    assert str(caught.value) == message
    assert order.lines == {}


@pytest.mark.parametrize(("sku", "length"), [("", 0), ("   ", 0), ("s" * 65, 65)])
def test_add_line_rejects_sku_out_of_bounds(sku: str, length: int) -> None:
    order = new_order()
    with pytest.raises(InvalidValue, match=f"^sku must be 1 to 64 characters, got {length}$"):
        order.add_line(sku, 1, Decimal("1.00"))


def test_add_line_rejects_a_second_line_for_the_same_sku() -> None:
    order = new_order()
    order.add_line("SKU-1", 1, Decimal("1.00"))
    order.collect_events()
    with pytest.raises(DomainError) as caught:
        order.add_line(" SKU-1 ", 5, Decimal("2.00"))
    assert "already has a line for sku 'SKU-1'" in str(caught.value)
    assert order.lines["SKU-1"] == OrderLine("SKU-1", 1, Decimal("1.00"))
    assert len(order.collect_events()) == 0


def test_add_line_rejects_more_than_max_lines() -> None:
    order = new_order()
    for i in range(MAX_LINES):
        order.add_line(f"SKU-{i}", 1, Decimal("1.00"))
    assert len(order.lines) == 100
    with pytest.raises(DomainError, match="at most 100 lines"):
        order.add_line("SKU-extra", 1, Decimal("1.00"))
    assert len(order.lines) == 100


def test_add_line_accepts_up_to_exactly_the_limit_and_refuses_a_line_over_it() -> None:
    order = new_order()
    order.add_line("A", 1000, Decimal("999999999.99"))
    order.add_line("B", 1, Decimal("9.99"))  # brings the total to exactly the limit
    assert order.total == MAX_AMOUNT
    assert len(order.collect_events()) == 2
    with pytest.raises(DomainError) as caught:
        order.add_line("C", 1, Decimal("0.01"))
    assert not isinstance(caught.value, InvalidValue)  # a rule of the order, not a bad value
    assert str(caught.value) == (
        "the line would bring the order's total to 1000000000000.00, above the most an order"
        " can total, 999999999999.99"
    )
    assert list(order.lines) == ["A", "B"]
    assert order.total == MAX_AMOUNT
    assert len(order.collect_events()) == 0


def test_add_line_refuses_a_single_line_whose_subtotal_is_over_the_limit() -> None:
    # The largest unit price the API takes, times the largest quantity.
    order = new_order()
    with pytest.raises(DomainError) as caught:
        order.add_line("A", 1000, MAX_AMOUNT)
    assert str(caught.value) == (
        "the line would bring the order's total to 999999999999990.00, above the most an order"
        " can total, 999999999999.99"
    )
    assert order.lines == {}
    assert len(order.collect_events()) == 0


def test_remove_line_drops_the_line() -> None:
    order = new_order()
    order.add_line("A", 1, Decimal("1.00"))
    order.add_line("B", 2, Decimal("3.00"))
    order.collect_events()
    order.remove_line("A")
    assert list(order.lines) == ["B"]
    assert order.total == Decimal("6.00")
    events = order.collect_events()
    assert len(events) == 1
    assert isinstance(events[0], Order.LineRemoved)
    assert events[0].sku == "A"


def test_remove_line_rejects_unknown_sku() -> None:
    order = new_order()
    order.add_line("A", 1, Decimal("1.00"))
    order.collect_events()
    with pytest.raises(DomainError) as caught:
        order.remove_line("B")
    assert str(caught.value) == "the order has no line for sku 'B'"
    assert list(order.lines) == ["A"]
    assert len(order.collect_events()) == 0


def test_a_removed_sku_can_be_added_again_with_new_terms() -> None:
    order = new_order()
    order.add_line("A", 1, Decimal("1.00"))
    order.remove_line("A")
    order.add_line("A", 4, Decimal("0.25"))
    assert order.lines["A"] == OrderLine("A", 4, Decimal("0.25"))
    assert order.total == Decimal("1.00")


# currencies of payment and their minor units (domain.currencies)


@pytest.mark.parametrize("currency", ["XXX", "XTS", "XAU", "XDR", "CLF"])
def test_create_refuses_a_code_that_is_not_a_currency_of_payment(currency: str) -> None:
    with pytest.raises(InvalidValue, match=f"currency {currency} is not a currency of payment"):
        Order.create(uuid4(), currency)


def test_a_price_in_yen_is_a_whole_number() -> None:
    order = new_order("JPY")
    order.add_line("A", 1, Decimal("1500"))
    with pytest.raises(InvalidValue, match="JPY has no minor unit: a price in JPY is a whole"):
        order.add_line("B", 1, Decimal("1500.50"))
    assert list(order.lines) == ["A"]


def test_an_order_stored_before_the_rule_still_folds_from_its_events() -> None:
    """Validation is at the command boundary: stored events are taken as they are."""
    written_then = Order._create(Order.Created, user_id=uuid4(), currency="XXX")
    written_then.trigger_event(Order.LineAdded, sku="A", quantity=1, unit_price=Decimal("1500.5"))
    order: Order | None = None
    for event in written_then.collect_events():
        order = event.mutate(order)
    assert order is not None
    assert (order.currency, order.total) == ("XXX", Decimal("1500.50"))
