"""Validated value types shared by the contexts: text bounds, email, country, currency, money."""

from decimal import Decimal, InvalidOperation
from functools import lru_cache

import pycountry
from email_validator import EmailNotValidError, validate_email

from domain.errors import InvalidValue


def bounded_text(value: str, *, field: str, max_length: int) -> str:
    """Strip surrounding whitespace and require 1..max_length characters."""
    text = value.strip()
    if not 1 <= len(text) <= max_length:
        raise InvalidValue(f"{field} must be 1 to {max_length} characters, got {len(text)}")
    return text


@lru_cache(maxsize=4096)
def normalized_email(value: str) -> str:
    """Return the address in normal form (domain lower-cased), or raise InvalidValue.

    Cached: the API validates a request's address, then the domain validates it again.
    """
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise InvalidValue(f"email {value!r} is not a valid address: {error}") from None


def email_claim_key(email: str) -> str:
    """The key under which an address is reserved: two spellings differing in case collide."""
    return email.casefold()


def country_code(value: str) -> str:
    """Return an ISO 3166-1 alpha-2 code in upper case, or raise InvalidValue."""
    code = value.strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise InvalidValue(f"country {value!r} is not an ISO 3166-1 alpha-2 code")
    return code


def currency_code(value: str) -> str:
    """Return an ISO 4217 alphabetic code in upper case, or raise InvalidValue."""
    code = value.strip().upper()
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise InvalidValue(f"currency {value!r} is not an ISO 4217 code")
    return code


CENT = Decimal("0.01")


def money_amount(value: Decimal, *, field: str) -> Decimal:
    """Require a finite, non-negative amount with at most two decimal places."""
    if not value.is_finite() or value < 0:
        raise InvalidValue(f"{field} must be a non-negative amount, got {value}")
    try:
        cents = value.quantize(CENT)
    except InvalidOperation:  # more digits than the decimal context can hold
        raise InvalidValue(f"{field} is too large, got {value}") from None
    if value != cents:
        raise InvalidValue(f"{field} may have at most 2 decimal places, got {value}")
    return cents.copy_abs()  # -0.00 is 0.00
