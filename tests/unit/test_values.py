"""Unit tests for the validated value types in domain.values."""

import unicodedata
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import DomainError, InvalidValue
from domain.values import (
    MAX_AMOUNT,
    bounded_text,
    country_code,
    currency_code,
    email_claim_key,
    legible_text,
    money_amount,
    named_text,
    normalized_email,
    plain_text,
    text_problem,
)


def test_invalid_value_is_a_domain_error() -> None:
    assert issubclass(InvalidValue, DomainError)


# the text rule

REFUSED = [
    "\x00",  # NUL: PostgreSQL text cannot hold it
    "\t",
    "\n",
    "\x1f",  # str.strip() would drop it silently
    "\x7f",
    "\x85",  # NEL, a C1 control and whitespace to str.strip()
    "\x9f",
    "\u2028",  # LINE SEPARATOR: a line break, as newline is
    "\u2029",  # PARAGRAPH SEPARATOR
    "\u202a",  # LEFT-TO-RIGHT EMBEDDING
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE: shows the text after it reversed
    "\u2066",  # LEFT-TO-RIGHT ISOLATE
    "\u2069",  # POP DIRECTIONAL ISOLATE
    "\ud800",  # a lone surrogate, as JSON's "\\ud800" decodes
    "\udfff",
    "\ufdd0",
    "\ufdef",
    "\ufffe",
    "\uffff",
    "\U0001fffe",
    "\U0010ffff",
]
ALLOWED = [
    "a",
    " ",
    "\xa0",
    "\u3000",
    "\u200b",
    "\u200d",  # ZERO WIDTH JOINER, inside emoji sequences
    "\u200e",  # LEFT-TO-RIGHT MARK, in mixed-direction text
    "\u200f",
    "\u2027",
    "\u2065",
    "\ufdcf",
    "\ufdf0",
    "\ufffd",
    "\ue000",
    "\U0010fffd",
]


def is_noncharacter(point: int) -> bool:
    return 0xFDD0 <= point <= 0xFDEF or point & 0xFFFE == 0xFFFE


def refused_by_definition(char: str) -> bool:
    """The rule as Unicode words: controls (Cc), bidirectional embedding, override and isolate
    controls (Bidi_Class LRE RLE PDF LRO RLO LRI RLI FSI PDI), surrogates (Cs), non-characters."""
    return (
        unicodedata.category(char) in ("Cc", "Cs")
        or unicodedata.bidirectional(char) in BIDI_CONTROLS
        or is_noncharacter(ord(char))
    )


BIDI_CONTROLS = {"LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI"}


@pytest.mark.parametrize("char", REFUSED)
def test_the_text_rule_refuses_the_character_and_names_it(char: str) -> None:
    problem = text_problem(f"ab{char}c")
    assert problem is not None
    assert problem.startswith(f"must not contain U+{ord(char):04X} (at index 2)")
    with pytest.raises(InvalidValue, match=rf"^city must not contain U\+{ord(char):04X} "):
        plain_text(f"ab{char}c", field="city")


@pytest.mark.parametrize("char", ALLOWED)
def test_the_text_rule_allows_other_characters(char: str) -> None:
    assert text_problem(f"a{char}b") is None
    assert plain_text(f"a{char}b", field="city") == f"a{char}b"


@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=20))
def test_the_text_rule_refuses_exactly_controls_surrogates_and_noncharacters(text: str) -> None:
    """(Bidirectional controls included.)"""
    assert (text_problem(text) is None) == (not any(map(refused_by_definition, text)))


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (lambda v: bounded_text(v, field="sku", max_length=9), " A-1\x1f"),
        (normalized_email, "ada@example.com\x85"),
        (country_code, "\x1cGB"),
        (currency_code, "EUR\x1f"),
    ],
)
def test_every_text_value_checks_the_rule_before_stripping(
    check: Callable[[str], object], value: str
) -> None:
    """str.strip() removes U+001C..U+001F and U+0085: stripping first would accept them."""
    with pytest.raises(InvalidValue, match="must not contain U"):
        check(value)


# bounded_text


def test_bounded_text_strips_surrounding_whitespace() -> None:
    assert bounded_text("  Ada Lovelace \u3000", field="name", max_length=100) == "Ada Lovelace"


def test_bounded_text_keeps_inner_whitespace() -> None:
    assert bounded_text(" a  b ", field="name", max_length=10) == "a  b"


@pytest.mark.parametrize("text", ["x", "x" * 5])
def test_bounded_text_accepts_both_bounds(text: str) -> None:
    assert bounded_text(text, field="name", max_length=5) == text


def test_bounded_text_length_is_measured_after_stripping() -> None:
    assert bounded_text("   abcde   ", field="name", max_length=5) == "abcde"


@pytest.mark.parametrize("text", ["", "   ", "\u00a0\u2003"])
def test_bounded_text_rejects_empty_or_blank(text: str) -> None:
    with pytest.raises(InvalidValue, match=r"^hobby must be 1 to 40 characters, got 0$"):
        bounded_text(text, field="hobby", max_length=40)


SHOWS_NOTHING = [
    *("\u200b", " \u200b\u2060 ", "\u200d\ufeff", "\u00ad"),
    *("\u034f", "\ufe0f", "\ufe00", "\U000e0100", "\u180b", "\u17b4"),  # marks (Mn)
    *("\u3164", "\u115f", "\u1160", "\uffa0", "\u3164\ufe0f "),  # Hangul fillers (Lo)
]
BASELESS = [
    *("\u0301", "\u0301\u0302\u0303", " \u0301 \u0308 ", "\u200b\u0301"),
    *("\u20dd", "\u0e31", "\u093f\u094d", "\U0001d167"),  # enclosing, Thai, Devanagari, music
]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        *((text, "a visible character") for text in SHOWS_NOTHING),
        *((text, "a base character") for text in BASELESS),  # combining marks alone
    ],
    ids=ascii,
)
def test_bounded_text_rejects_text_that_shows_nothing_or_has_no_base(
    text: str, problem: str
) -> None:
    with pytest.raises(InvalidValue, match=f"^name must hold {problem}"):
        bounded_text(text, field="name", max_length=40)


@pytest.mark.parametrize(
    "text",
    ["a\u200b", "\U0001f469\u200d\U0001f4bb", "\u0627\u200f", "\u2764\ufe0f", "\u2800"],
    ids=ascii,
)
def test_bounded_text_accepts_text_with_something_to_show(text: str) -> None:
    assert bounded_text(text, field="name", max_length=40) == text


@pytest.mark.parametrize(
    "text",
    [
        *("Zoe\u0308", "e\u0301", "\u0301a", "Ren\u00e9e"),
        *("\u0926\u0947\u0935\u0928\u093e\u0917\u0930\u0940", "\u0e2a\u0e21\u0e31\u0e22"),
        *("\u1100\u1161\u11a8", "\u3164\u1161"),  # Hangul jamo, one after a filler
    ],
    ids=ascii,
)
def test_bounded_text_keeps_combining_marks_that_have_a_base(text: str) -> None:
    assert bounded_text(text, field="name", max_length=40) == text


@pytest.mark.parametrize("text", BASELESS, ids=ascii)
def test_named_text_finds_what_was_stored_before_the_base_character_rule(text: str) -> None:
    assert named_text(text, field="hobby", max_length=40) == text.strip()


def test_bounded_text_rejects_too_long_and_reports_length() -> None:
    with pytest.raises(InvalidValue, match=r"^city must be 1 to 5 characters, got 6$"):
        bounded_text("abcdef", field="city", max_length=5)


# normalized_email


def test_normalized_email_lowercases_the_domain_only() -> None:
    assert normalized_email("Alice@EXAMPLE.COM") == "Alice@example.com"


def test_normalized_email_strips_whitespace() -> None:
    assert normalized_email("  bob@example.org ") == "bob@example.org"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("no-at-sign.example.com", "@-sign"),
        ("x@localhost", "period"),
        ("a@@example.com", "invalid characters"),
        ("", "@-sign"),
    ],
)
def test_normalized_email_rejects_malformed_addresses(address: str, reason: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        normalized_email(address)
    message = str(caught.value)
    assert message.startswith(f"email {address!r} is not a valid address")
    assert reason in message


def test_email_claim_key_makes_case_variants_collide() -> None:
    assert email_claim_key("Alice@example.com") == email_claim_key("ALICE@Example.COM")
    assert email_claim_key("alice@example.com") != email_claim_key("alicia@example.com")


# country_code


@pytest.mark.parametrize(("given", "expected"), [("gb", "GB"), (" De ", "DE"), ("US", "US")])
def test_country_code_normalises_to_upper_case(given: str, expected: str) -> None:
    assert country_code(given) == expected


@pytest.mark.parametrize("given", ["XX", "GBR", "uk", "", "G", "1A"])
def test_country_code_rejects_non_alpha2_codes(given: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        country_code(given)
    assert str(caught.value) == f"country {given!r} is not an ISO 3166-1 alpha-2 code"


# currency_code


@pytest.mark.parametrize(("given", "expected"), [("eur", "EUR"), (" Usd ", "USD"), ("JPY", "JPY")])
def test_currency_code_normalises_to_upper_case(given: str, expected: str) -> None:
    assert currency_code(given) == expected


@pytest.mark.parametrize("given", ["ABC", "EURO", "EU", "", "€"])
def test_currency_code_rejects_non_iso4217_codes(given: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        currency_code(given)
    assert str(caught.value) == f"currency {given!r} is not an ISO 4217 code"


# money_amount


@pytest.mark.parametrize(
    ("given", "expected"),
    [("0", "0.00"), ("5", "5.00"), ("1.5", "1.50"), ("1.000", "1.00"), ("12.34", "12.34")],
)
def test_money_amount_normalises_to_two_decimal_places(given: str, expected: str) -> None:
    amount = money_amount(Decimal(given), field="unit_price")
    assert amount == Decimal(expected)
    assert str(amount) == expected


@pytest.mark.parametrize("given", ["-0.01", "-5"])
def test_money_amount_rejects_negative(given: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        money_amount(Decimal(given), field="unit_price")
    assert str(caught.value) == f"unit_price must be a non-negative amount, got {given}"


@pytest.mark.parametrize("given", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_money_amount_rejects_non_finite(given: str) -> None:
    with pytest.raises(InvalidValue, match="unit_price must be a non-negative amount"):
        money_amount(Decimal(given), field="unit_price")


@pytest.mark.parametrize("given", ["1.001", "0.005", "9.999"])
def test_money_amount_rejects_more_than_two_decimals(given: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        money_amount(Decimal(given), field="price")
    assert str(caught.value) == f"price may have at most 2 decimal places, got {given}"


@pytest.mark.parametrize("given", ["1E+26", "1E+30", "123456789012345678901234567"])
def test_money_amount_rejects_amounts_too_large_to_hold_cents_as_invalid_value(
    given: str,
) -> None:
    # Such amounts cannot be quantized to cents in the default 28-digit context; the guard must
    # still answer with InvalidValue, not leak decimal.InvalidOperation.
    with pytest.raises(InvalidValue) as caught:
        money_amount(Decimal(given), field="unit_price")
    assert str(caught.value) == f"unit_price is too large, got {Decimal(given)}"


def test_negative_zero_is_stored_as_plain_zero() -> None:
    amount = money_amount(Decimal("-0"), field="unit_price")
    assert str(amount) == "0.00"


@pytest.mark.parametrize("given", ["999999999999.99", "999999999999.990", "0999999999999.99"])
def test_money_amount_accepts_exactly_the_largest_amount_and_refuses_a_cent_more(
    given: str,
) -> None:
    assert Decimal("999999999999.99") == MAX_AMOUNT  # the API's 12 integer digits, 2 decimals
    amount = money_amount(Decimal(given), field="amount")
    assert amount == MAX_AMOUNT
    assert str(amount) == "999999999999.99"
    with pytest.raises(InvalidValue, match=r"^amount must be at most 999999999999\.99, got"):
        money_amount(Decimal(given) + Decimal("0.01"), field="amount")


@pytest.mark.parametrize(
    "given", ["1000000000000.00", "1000000000000", "999999999999999990.00", "1E+13"]
)
def test_money_amount_refuses_more_than_the_largest_amount(given: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        money_amount(Decimal(given), field="amount")
    assert str(caught.value) == f"amount must be at most 999999999999.99, got {Decimal(given)}"


@pytest.mark.parametrize(
    ("written", "legible"),
    [
        ("  card declined  ", "card declined"),
        ("card\u0000declined\u202eby\tthe bank", "card declined by the bank"),
        ("\U0001f469\u200d\U0001f4bb busy", "\U0001f469\u200d\U0001f4bb busy"),
        ("\ud800 \ufffe", "-"),
        ("\u200b\u2060 \u0007", "-"),
        ("\u0301 \u0308", "-"),
        ("y" * 30 + "   z", "y" * 30),
        ("y" * 40, "y" * 30),
    ],
)
def test_another_party_s_text_is_made_to_follow_the_text_rule(written: str, legible: str) -> None:
    made = legible_text(written, max_length=30, fallback="-")

    assert made == legible
    assert made == "-" or bounded_text(made, field="reason", max_length=30) == made
