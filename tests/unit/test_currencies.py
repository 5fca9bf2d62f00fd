"""Currencies of payment and the decimals of a price in each (ISO 4217's minor units), checked
against the ISO table the `iso4217` package ships."""

from decimal import Decimal

import iso4217
import pytest

from domain.currencies import MONEY_DECIMALS, minor_units, payment_currency, price_in
from domain.errors import InvalidValue

NO_MINOR_UNIT = ["JPY", "KRW", "CLP", "ISK", "VND", "PYG", "UGX", "XAF", "XOF", "XPF"]
THREE_MINOR_UNITS = ["BHD", "KWD", "JOD", "OMR", "TND", "IQD", "LYD"]
NOT_CURRENCIES_OF_PAYMENT = [
    *("XXX", "XTS", "XAU", "XAG", "XPT", "XPD"),
    *("XDR", "XSU", "XUA", "XBA", "XBB", "XBC", "XBD"),
    *("BOV", "CLF", "COU", "MXV", "USN", "UYI", "UYW", "CHE", "CHW"),
]


def test_the_table_is_iso_4217_as_published_in_2026_or_later() -> None:
    assert iso4217.__published__.year >= 2026


@pytest.mark.parametrize(
    ("codes", "units"), [(NO_MINOR_UNIT, 0), (THREE_MINOR_UNITS, 3), (["EUR", "USD", "GBP"], 2)]
)
def test_minor_units_are_iso_4217_s(codes: list[str], units: int) -> None:
    assert {code: minor_units(code) for code in codes} == dict.fromkeys(codes, units)


@pytest.mark.parametrize("code", NOT_CURRENCIES_OF_PAYMENT)
def test_codes_that_are_not_a_currency_of_payment_are_refused(code: str) -> None:
    assert minor_units(code) is None
    with pytest.raises(InvalidValue, match=f"currency {code} is not a currency of payment"):
        payment_currency(code)


@pytest.mark.parametrize(("given", "expected"), [("eur", "EUR"), (" Jpy ", "JPY"), ("BHD", "BHD")])
def test_a_currency_of_payment_is_its_upper_case_code(given: str, expected: str) -> None:
    assert payment_currency(given) == expected


def test_an_unknown_code_is_refused_as_before() -> None:
    with pytest.raises(InvalidValue, match="currency 'ABC' is not an ISO 4217 code"):
        payment_currency("ABC")


@pytest.mark.parametrize("code", NO_MINOR_UNIT)
def test_a_price_in_a_currency_without_minor_unit_is_a_whole_number(code: str) -> None:
    assert price_in(Decimal("1500"), code, field="unit_price") == Decimal("1500.00")
    assert price_in(Decimal("1500.00"), code, field="unit_price") == Decimal("1500")
    with pytest.raises(InvalidValue) as caught:
        price_in(Decimal("1500.5"), code, field="unit_price")
    assert str(caught.value) == (
        f"unit_price 1500.5: {code} has no minor unit: a price in {code} is a whole number"
    )


def test_a_price_in_a_currency_with_two_minor_units_has_at_most_two_decimals() -> None:
    assert price_in(Decimal("0.99"), "EUR", field="amount") == Decimal("0.99")
    with pytest.raises(InvalidValue, match="amount may have at most 2 decimal places"):
        price_in(Decimal("0.999"), "EUR", field="amount")


@pytest.mark.parametrize("code", THREE_MINOR_UNITS)
def test_a_currency_with_three_minor_units_is_priced_in_hundredths_here(code: str) -> None:
    assert MONEY_DECIMALS == 2  # the read models count cents: see domain.currencies
    assert price_in(Decimal("1.25"), code, field="amount") == Decimal("1.25")
    with pytest.raises(InvalidValue, match="at most 2 decimal places"):
        price_in(Decimal("1.255"), code, field="amount")


def test_no_price_is_taken_in_a_code_that_is_not_a_currency_of_payment() -> None:
    with pytest.raises(InvalidValue, match="XXX is not a currency of payment"):
        price_in(Decimal("1"), "XXX", field="unit_price")
