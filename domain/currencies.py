"""Currencies an order or a payment may be in, and how many decimals a price in each may carry.

The source is ISO 4217's own table, list one (the `iso4217` package ships it, dated by
`iso4217.__published__`). A currency of payment has minor units in that table: the codes whose
minor units are "N.A." are not money one pays with (XXX no currency, XTS testing, the precious
metals XAU, XAG, XPT, XPD, and units of account such as XDR, XSU, XUA, XBA to XBD), and the
codes the table marks as funds (BOV, CLF, COU, MXV, USN, UYI, CHE, CHW) are not either.

Validation happens only where a command enters: aggregates folded from stored events take the
currency their events hold, whatever rule was in force when they were written.
"""

from decimal import Decimal

from iso4217 import Currency, raw_xml

from domain.errors import InvalidValue
from domain.values import currency_code, money_amount

_CENT = Decimal("0.01")

MONEY_DECIMALS = 2
"""The most decimals a price or an amount a command takes may carry: the read models count money
in hundredths and the payment provider takes at most 2 decimals. A currency with 3 minor units
(BHD, KWD, JOD, OMR, TND, IQD, LYD) is priced in hundredths too, until those count in its
units. What the read API answers has the currency's own minor units all the same (hundredths
are exact in 3 decimals: "1.230"; `readmodels.formats.money_text`)."""

UNITS_OF_ACCOUNT = frozenset({"UYW"})
"""Codes with minor units that are not paid with but ISO 4217 does not mark as funds: UYW,
Uruguay's Unidad Previsional, an index of wages."""


def _funds() -> frozenset[str]:
    entries = raw_xml.findall("CcyTbl/CcyNtry")
    return frozenset(
        entry.findtext("Ccy", "")
        for entry in entries
        if entry.find("CcyNm[@IsFund='true']") is not None
    )


FUNDS = _funds() | UNITS_OF_ACCOUNT


def minor_units(code: str) -> int | None:
    """The minor units ISO 4217 gives the currency `code`; None for a code that is not a
    currency of payment (or not in the table)."""
    try:
        currency = Currency(code)
    except ValueError:
        return None
    return None if code in FUNDS else currency.exponent


def payment_currency(value: str) -> str:
    """Return the code of a currency of payment in upper case, or raise InvalidValue."""
    code = currency_code(value)
    if minor_units(code) is None:
        raise InvalidValue(
            f"currency {code} is not a currency of payment: no currency (XXX), testing (XTS),"
            " precious metals, units of account and funds are refused"
        )
    return code


def price_in(value: Decimal, currency: str, *, field: str) -> Decimal:
    """Return `value` as an amount of `currency` (see money_amount), or raise InvalidValue if it
    has more decimals than the currency's minor units."""
    amount = money_amount(value, field=field)
    units = minor_units(currency)
    if units is None:
        raise InvalidValue(f"{field}: {currency} is not a currency of payment; it takes no price")
    decimals = min(units, MONEY_DECIMALS)
    if amount == amount.quantize(Decimal(1).scaleb(-decimals)):
        return amount
    if decimals == 0:
        raise InvalidValue(
            f"{field} {value}: {currency} has no minor unit: a price in {currency} is a whole"
            " number"
        )
    raise InvalidValue(f"{field} {value}: a price in {currency} has at most {decimals} decimals")


def amount_text(amount: Decimal, currency: str) -> str:
    """An amount of `currency` as the APIs answer it, with the currency's ISO 4217 minor units:
    "1500" yen, "12.30" dollars, "1.230" dinars. A currency the table does not know (any more:
    a stored event from before), and an amount its minor units cannot hold (yen cents stored
    before prices in yen were whole), keep 2 decimals: an answer neither fails nor rounds."""
    cents = amount.quantize(_CENT)
    units = minor_units(currency)
    if units is None:
        return f"{cents:f}"
    shown = cents.quantize(Decimal(1).scaleb(-units))
    return f"{shown if shown == cents else cents:f}"
