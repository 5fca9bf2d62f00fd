"""The If-Match parser (RFC 9110 §13.1.1) and the domain's view of it, ExpectedVersions."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.service import ANY_EXISTING_VERSION, ExpectedVersions
from write_api.command_http import MalformedIfMatch, parse_if_match


@pytest.mark.parametrize(
    ("value", "versions"),
    [
        ('"1"', {1}),
        ('"0"', {0}),
        ('"1", "3"', {1, 3}),
        ('"1","3"', {1, 3}),
        ('\t"1" ,\t"3"\t', {1, 3}),
        ('"1",, ,"3",', {1, 3}),  # empty list elements are allowed and ignored (§5.6.1.2)
        (', "2"', {2}),
        ('"2", "2"', {2}),
        ('"999999999999999999"', {999_999_999_999_999_999}),
        ('W/"1"', set()),  # weak tags never match under strong comparison
        ('W/"1", "2"', {2}),
    ],
)
def test_a_list_of_entity_tags_accepts_the_versions_of_its_strong_tags(
    value: str, versions: set[int]
) -> None:
    assert parse_if_match(value) == ExpectedVersions(frozenset(versions))


@pytest.mark.parametrize("value", ["*", " * ", "\t*"])
def test_a_star_accepts_any_existing_version(value: str) -> None:
    assert parse_if_match(value) == ANY_EXISTING_VERSION


@pytest.mark.parametrize(
    "value",
    [
        '"1',  # unclosed
        '1"',
        "1",  # unquoted
        "",  # no tag at all
        "  ",
        ",",
        ", ,",
        '"01"',  # a leading zero: not a tag this API issues
        '"1.0"',
        '"-1"',
        '"+1"',
        '" 1"',
        '"a"',
        '"\xb9"',  # superscript one, a Latin-1 "digit"
        '"1000000000000000000"',  # 19 digits: more than a version can have
        '"1" "2"',  # no comma between tags
        '"1" x',  # garbage between tags
        '"1"x,"2"',
        '"1";"2"',
        '*, "1"',  # "*" stands alone
        "**",
        '*"1"',
        'w/"1"',  # the weak prefix is case-sensitive
        'W/ "1"',
        "W/1",
        'W/"01"',
        '"1"\n',
        '"1\x7f"',
        '"""',
    ],
)
def test_a_malformed_value_is_refused(value: str) -> None:
    with pytest.raises(MalformedIfMatch):
        parse_if_match(value)


def test_a_long_run_of_blanks_before_garbage_is_refused() -> None:
    """The separators are matched possessively: this must not backtrack quadratically."""
    with pytest.raises(MalformedIfMatch):
        parse_if_match('"1"' + " " * 20_000 + "x")


blanks = st.text(st.sampled_from(" \t"), max_size=3)
tags = st.tuples(st.booleans(), st.integers(min_value=0, max_value=10**18 - 1))
elements = st.one_of(tags, st.none())  # None: an empty list element


def render(element: tuple[bool, int] | None) -> str:
    if element is None:
        return ""
    weak, version = element
    return f'{"W/" if weak else ""}"{version}"'


@given(
    items=st.lists(elements, min_size=1, max_size=8).filter(any),
    gaps=st.lists(st.tuples(blanks, blanks), min_size=9, max_size=9),
)
def test_any_rendering_of_a_tag_list_parses_to_its_strong_versions(
    items: list[tuple[bool, int] | None], gaps: list[tuple[str, str]]
) -> None:
    value = ",".join(
        before + render(item) + after for item, (before, after) in zip(items, gaps, strict=False)
    )
    strong = {item[1] for item in items if item is not None and not item[0]}
    assert parse_if_match(value) == ExpectedVersions(frozenset(strong))


@given(st.text(st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=30))
def test_any_latin1_value_is_parsed_or_refused_as_malformed(value: str) -> None:
    """Header values reach the parser as Latin-1 text: nothing else may escape from it."""
    try:
        expected = parse_if_match(value)
    except MalformedIfMatch:
        return
    assert expected == ANY_EXISTING_VERSION or all(v >= 0 for v in expected.versions)


@pytest.mark.parametrize(
    ("expected", "version", "admitted"),
    [
        (ExpectedVersions(frozenset({1, 3})), 3, True),
        (ExpectedVersions(frozenset({1, 3})), 2, False),
        (ExpectedVersions(), 1, False),
        (ANY_EXISTING_VERSION, 7, True),
    ],
)
def test_expected_versions_admit_exactly_their_versions(
    expected: ExpectedVersions, version: int, admitted: bool
) -> None:
    assert expected.admit(version) is admitted


@pytest.mark.parametrize(
    ("expected", "text"),
    [
        (ExpectedVersions(frozenset({3, 1})), "version 1 or 3"),
        (ExpectedVersions(), "a named version (the condition names none that can match)"),
        (ANY_EXISTING_VERSION, "any existing version"),
    ],
)
def test_expected_versions_read_as_words_in_messages(expected: ExpectedVersions, text: str) -> None:
    assert str(expected) == text
