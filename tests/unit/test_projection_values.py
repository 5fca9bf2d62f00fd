"""Projection values: money as exact cents and back as text in the currency's minor units,
times as fixed-width UTC text, and the paths the dump comparison names."""

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from iso4217 import Currency

from readmodels.formats import cents, money_text, utc_text
from runtime.http.money import MONEY_PATTERN
from tests.support.dumps import differences
from tests.support.projection_doubles import T


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("12.34", 1234), ("0", 0), ("0.10", 10), ("1000000000.01", 100000000001), (5, 500)],
)
def test_amounts_become_exact_cents(amount: str | int, expected: int) -> None:
    assert cents(amount) == expected


@pytest.mark.parametrize("amount", ["0.001", "abc", "NaN", "Infinity", "1.005"])
def test_anything_but_whole_cents_is_refused(amount: str) -> None:
    with pytest.raises(ValueError, match="not"):
        cents(amount)


@given(st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False))
def test_cents_round_trip(amount: Decimal) -> None:
    assert Decimal(cents(str(amount))) / 100 == amount


@pytest.mark.parametrize(
    ("stored", "currency", "expected"),
    [
        (1230, "USD", "12.30"),
        (5, "EUR", "0.05"),
        (150000, "JPY", "1500"),
        (123, "BHD", "1.230"),
        (100001, "KWD", "1000.010"),
        (-4550, "USD", "-45.50"),  # a day that refunded more than it was paid
        (-150000, "JPY", "-1500"),
        (-1, "BHD", "-0.010"),
        (0, "USD", "0.00"),
        (0, "JPY", "0"),
        (0, "BHD", "0.000"),
    ],
)
def test_stored_cents_are_shown_with_the_currencys_minor_units(
    stored: int, currency: str, expected: str
) -> None:
    assert money_text(stored, currency) == expected


@pytest.mark.parametrize(
    ("stored", "currency", "expected"),
    [
        (1230, "ZZZ", "12.30"),  # not in the table (any more)
        (1230, "XAU", "12.30"),  # in it, but not a currency of payment
        (-7, "ZZZ", "-0.07"),
        (1234, "JPY", "12.34"),  # yen cents stored before yen prices were whole: not rounded
    ],
)
def test_an_unknown_currency_or_an_amount_its_units_cannot_hold_keeps_two_decimals(
    stored: int, currency: str, expected: str
) -> None:
    assert money_text(stored, currency) == expected


@given(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([*(c.code for c in Currency), "ZZZ"]),
)
def test_money_text_is_exact_and_what_the_apis_say_they_answer(stored: int, code: str) -> None:
    text = money_text(stored, code)
    assert re.fullmatch(MONEY_PATTERN, text)
    assert Decimal(text) == Decimal(stored) / 100


def test_times_are_fixed_width_utc_text_that_sorts_like_time() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert (
        utc_text(datetime(2026, 3, 1, 14, 0, tzinfo=plus_two)) == "2026-03-01T12:00:00.000000+00:00"
    )
    earlier, later = T, T + timedelta(microseconds=1)
    assert utc_text(earlier) < utc_text(later)
    with pytest.raises(ValueError, match="naive"):
        utc_text(datetime(2026, 3, 1))


def test_dump_differences_name_the_path_of_each_mismatch() -> None:
    live = {"orders": {"orders": [["a", 1], ["b", 2]]}, "top": {"top:EUR": [["u", 5]]}}
    rebuilt = {"orders": {"orders": [["a", 1], ["b", 3]]}, "top": {}}

    assert differences(live, live) == []
    assert differences(live, rebuilt) == [
        "$.orders.orders[1][1]: expected 2, got 3",
        "$.top.top:EUR: missing",
    ]
    assert len(differences({"x": list(range(50))}, {"x": [-1] * 50}, limit=5)) == 5
