"""Validated value types shared by the contexts: text bounds, email, country, currency, money."""

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import pycountry
from email_validator import EmailNotValidError, validate_email

from domain.errors import InvalidValue

# The one rule for text anywhere in the system (no field is multi-line): no C0 or C1 control
# character, no DEL, no LINE SEPARATOR or PARAGRAPH SEPARATOR (U+2028, U+2029: line breaks, as
# newline and NEL are), no bidirectional embedding, override or isolate control, no lone surrogate
# (JSON can carry one; UTF-8 cannot) and no non-character. PostgreSQL refuses NUL outright; the
# others would be stored but could not be shown or typed, and a bidirectional control reorders
# how the text after it is shown ("Trojan Source"). The marks U+200E and U+200F stay allowed.
FORBIDDEN_IN_TEXT = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
    + "".join(f"\\U{plane:04x}fffe\\U{plane:04x}ffff" for plane in range(1, 17))
    + "]"
)


CANONICAL_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
"""An id as the APIs take it: the hyphenated 36-character form, in either case."""


def text_problem(value: str) -> str | None:
    """Why `value` breaks the text rule, naming the first offending character (None if it holds)."""
    found = FORBIDDEN_IN_TEXT.search(value)
    if found is None:
        return None
    return (
        f"must not contain U+{ord(found.group()):04X} (at index {found.start()}):"
        " control characters, line and paragraph separators, bidirectional controls, surrogates"
        " and non-characters are refused"
    )


DEFAULT_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
"""Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 15): what a
renderer shows nothing for, such as U+034F COMBINING GRAPHEME JOINER, the variation selectors
and the Hangul fillers, which are not all format characters (Cf)."""


def invisible_problem(text: str) -> str | None:
    """Why trimmed, non-empty `text` shows nothing (None if it shows something): it holds only
    whitespace, format characters (Cf) and default-ignorable characters, such as U+200B ZERO
    WIDTH SPACE or U+3164 HANGUL FILLER."""
    if any(_shows(char) for char in text):
        return None
    return "must hold a visible character, not only whitespace and invisible format characters"


def _shows(char: str) -> bool:
    return not (
        char.isspace()
        or unicodedata.category(char) == "Cf"
        or DEFAULT_IGNORABLE.match(char) is not None
    )


def baseless_problem(text: str) -> str | None:
    """Why trimmed `text` has no base character (None if it has one): in NFC, every character
    that shows is a combining mark (category M*), such as a lone U+0301 COMBINING ACUTE ACCENT,
    which has nothing to combine with. "Zoe" + U+0308, Devanagari, Thai and Hangul jamo have
    letters to carry their marks."""
    if any(_is_base(char) for char in unicodedata.normalize("NFC", text)):
        return None
    return "must hold a base character (a letter, digit or symbol), not only combining marks"


def _is_base(char: str) -> bool:
    return _shows(char) and not unicodedata.category(char).startswith("M")


def plain_text(value: str, *, field: str) -> str:
    """Return `value` unchanged if it follows the text rule, else raise InvalidValue."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidValue(f"{field} {problem}")
    return value


def bounded_text(value: str, *, field: str, max_length: int) -> str:
    """Refuse forbidden characters, strip surrounding whitespace, require 1..max_length chars
    with a visible base character: the rule for text a command brings."""
    text = named_text(value, field=field, max_length=max_length)
    problem = baseless_problem(text)
    if problem is not None:
        raise InvalidValue(f"{field} {problem}")
    return text


def named_text(value: str, *, field: str, max_length: int) -> str:
    """`bounded_text` less its base-character rule, for text that names something which may
    have been stored before that rule (a hobby to remove, a city searched for)."""
    text = plain_text(value, field=field).strip()
    if not 1 <= len(text) <= max_length:
        raise InvalidValue(f"{field} must be 1 to {max_length} characters, got {len(text)}")
    problem = invisible_problem(text)
    if problem is not None:
        raise InvalidValue(f"{field} {problem}")
    return text


def legible_text(value: str, *, max_length: int, fallback: str) -> str:
    """What another party wrote (a provider's reason), made to follow the text rule instead of
    refused: forbidden characters become spaces, it is trimmed and cut to `max_length`, and
    `fallback` stands in when nothing visible is left."""
    cleaned = FORBIDDEN_IN_TEXT.sub(" ", value).strip()[:max_length].strip()
    shows = cleaned and invisible_problem(cleaned) is None and baseless_problem(cleaned) is None
    return cleaned if shows else fallback


def caseless(text: str) -> str:
    """The key shared by texts that differ only in letter case or Unicode normalization
    (canonical caseless match, Unicode §3.13 D145), in NFC: "Straße", "STRASSE" and "strasse"
    have one, and so do "é" and "e" followed by U+0301."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).casefold())


@lru_cache(maxsize=4096)
def normalized_email(value: str) -> str:
    """Return the address in normal form (domain lower-cased), or raise InvalidValue.

    Cached: the API validates a request's address, then the domain validates it again.
    """
    try:
        address = plain_text(value, field="email").strip()
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise InvalidValue(f"email {value!r} is not a valid address: {error}") from None


def email_claim_key(email: str) -> str:
    """The key under which an address is reserved: two spellings differing in case collide."""
    return email.casefold()


def country_code(value: str) -> str:
    """Return an ISO 3166-1 alpha-2 code in upper case, or raise InvalidValue."""
    code = plain_text(value, field="country").strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise InvalidValue(f"country {value!r} is not an ISO 3166-1 alpha-2 code")
    return code


def currency_code(value: str) -> str:
    """Return an ISO 4217 alphabetic code in upper case, or raise InvalidValue."""
    code = plain_text(value, field="currency").strip().upper()
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise InvalidValue(f"currency {value!r} is not an ISO 4217 code")
    return code


CENT = Decimal("0.01")
AMOUNT_DIGITS = 12
"""The integer digits of an amount, as the APIs' grammar and the payment provider take them."""
MAX_AMOUNT = Decimal("9" * AMOUNT_DIGITS + ".99")
"""The largest amount the system handles: a unit price, an order's total, a payment."""


def money_amount(value: Decimal, *, field: str) -> Decimal:
    """Require a finite, non-negative amount with at most two decimal places, at most
    MAX_AMOUNT."""
    if not value.is_finite() or value < 0:
        raise InvalidValue(f"{field} must be a non-negative amount, got {value}")
    try:
        cents = value.quantize(CENT)
    except InvalidOperation:  # more digits than the decimal context can hold
        raise InvalidValue(f"{field} is too large, got {value}") from None
    if value != cents:
        raise InvalidValue(f"{field} may have at most 2 decimal places, got {value}")
    if cents > MAX_AMOUNT:
        raise InvalidValue(f"{field} must be at most {MAX_AMOUNT}, got {value}")
    return cents.copy_abs()  # -0.00 is 0.00
