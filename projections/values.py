"""Conversions shared by projections: money to integer cents, times to UTC text."""

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

_HUNDRED = Decimal(100)


def cents(amount: str | int | Decimal) -> int:
    """An amount in currency units ("12.34", as carried in envelopes) as integer cents, exactly.

    Raises ValueError for anything that is not a whole number of cents.
    """
    try:
        value = Decimal(amount) * _HUNDRED
    except InvalidOperation:
        raise ValueError(f"not an amount: {amount!r}") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f"not a whole number of cents: {amount!r}")
    return int(value)


def utc_text(moment: datetime) -> str:
    """A fixed-width ISO 8601 UTC text that sorts like the time it names."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: read models store UTC times only")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def utc_day(moment: datetime) -> date:
    """The UTC calendar day of a moment."""
    return moment.astimezone(UTC).date()
