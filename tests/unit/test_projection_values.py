"""Projection values: money as exact cents, times as fixed-width UTC text, and the paths
the dump comparison names."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readmodels.formats import cents, utc_text
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
