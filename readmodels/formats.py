"""How read models store values where the store has no type for them (Redis, SQLite): money as
integer cents, times as fixed-width UTC text, and how readers turn stored values back."""

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from uuid import UUID

from domain.currencies import amount_text

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


def money_text(stored_cents: int, currency: str) -> str:
    """Stored cents of `currency` as the decimal text the APIs answer (`amount_text`: the
    currency's ISO 4217 minor units; hundredths are exact in 3 decimals)."""
    return amount_text(Decimal(stored_cents).scaleb(-2), currency)


def utc_text(moment: datetime) -> str:
    """A fixed-width ISO 8601 UTC text that sorts like the time it names."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: read models store UTC times only")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def utc_day(moment: datetime) -> date:
    """The UTC calendar day of a moment."""
    return moment.astimezone(UTC).date()


def stored_time(value: object) -> datetime:
    """A stored time (a `timestamptz`, or the text of `utc_text`) as an aware UTC datetime."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def stored_uuid(value: object) -> UUID:
    """A stored UUID (PostgreSQL `uuid`, or its text in SQLite and Redis)."""
    return value if isinstance(value, UUID) else UUID(str(value))


def stored_date(value: object) -> date:
    """A stored day (PostgreSQL `date`, or `YYYY-MM-DD` text in SQLite)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return date.fromisoformat(str(value))
