"""The state the replay CLI shows: every public field as plain JSON, and field-by-field changes."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from uuid import UUID, uuid4

from domain.orders.order import Order
from domain.users.profile import UserProfile
from replay.state_view import changes, describe, plain, state_of


def test_a_profile_shows_every_public_attribute_and_no_bookkeeping() -> None:
    profile = UserProfile.register("Ada Lovelace", "ada@example.com")
    profile.add_hobby("Chess")
    profile.change_location("London", "gb")

    assert state_of(profile) == {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "hobbies": ["Chess"],
        "city": "London",
        "country": "GB",
        "active": True,
    }


def test_an_order_lists_its_lines_with_money_as_strings_and_its_total() -> None:
    user = uuid4()
    order = Order.create(user, "EUR")
    order.add_line("A-1", 3, Decimal("9.99"))
    order.add_line("B-2", 1, Decimal("5"))
    order.place()

    state = state_of(order)

    assert state == {
        "user_id": str(user),
        "currency": "EUR",
        "lines": [
            {"sku": "A-1", "quantity": 3, "unit_price": "9.99", "subtotal": "29.97"},
            {"sku": "B-2", "quantity": 1, "unit_price": "5.00", "subtotal": "5.00"},
        ],
        "status": "placed",
        "total": "34.97",
    }
    assert json.loads(json.dumps(state)) == state  # plain JSON, nothing needs a default


class Colour(Enum):
    RED = 1


@dataclass(frozen=True)
class Point:
    x: Decimal
    y: Decimal


def test_plain_values() -> None:
    moment = datetime(2026, 11, 26, 10, 42, tzinfo=UTC)
    ident = UUID(int=7)
    assert plain(Colour.RED) == 1
    assert plain(Decimal("1.10")) == "1.10"
    assert plain(ident) == str(ident)
    assert plain(moment) == "2026-11-26T10:42:00+00:00"
    assert plain({"a": Point(Decimal(1), Decimal(2))}) == [{"x": "1", "y": "2"}]
    assert plain({}) == {}
    assert plain({1: [Decimal(1)], "b": (None, True)}) == {"1": ["1"], "b": [None, True]}
    assert plain("text") == "text"


def test_changes_names_only_the_fields_that_differ_with_both_values() -> None:
    before = {"name": "Ada", "hobbies": ["Chess"], "city": None, "active": True}
    after = {"name": "Ada King", "hobbies": ["Chess"], "city": "London", "active": True}

    assert changes(before, after) == {
        "name": {"from": "Ada", "to": "Ada King"},
        "city": {"from": None, "to": "London"},
    }
    assert changes(after, after) == {}


def test_changes_covers_fields_present_on_one_side_only() -> None:
    assert changes({"a": 1}, {"b": 2}) == {
        "a": {"from": 1, "to": None},
        "b": {"from": None, "to": 2},
    }


def test_describe_puts_records_one_per_line() -> None:
    assert describe(None) == "-"
    assert describe([]) == "(none)"
    assert describe(["Chess", "Go"]) == "Chess\nGo"
    assert describe([{"sku": "A", "quantity": 2}]) == "sku=A, quantity=2"
    assert describe(True) == "True"
