"""The raw query-string checks of the read routes: encoding and repetition, own parameters only."""

import pytest

from runtime.http.query_string import BAD_ESCAPE, path_problems, query_string_problems

NAMES = frozenset({"hobby", "limit"})
NOT_UTF8 = "must be UTF-8, with every byte outside ASCII percent-encoded"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"hobby=caf%C3%A9&limit=5",
        b"hobby=a+b",
        b"hobby=",
        b"hobby",
        b"other=%FF&other=\xff&other=1",  # not a parameter of the route: ignored
        b"&&hobby=x&",
        b"hobby=%25zz&limit=%2A",  # `%` written as `%25`; escapes in either case
        b"other=%zz",
    ],
)
def test_well_formed_query_strings_have_no_problems(raw: bytes) -> None:
    assert query_string_problems(raw, NAMES) == []


@pytest.mark.parametrize(
    ("raw", "problems"),
    [
        (b"hobby=%FF", [("hobby", NOT_UTF8)]),
        (b"hobby=%ED%A0%80", [("hobby", NOT_UTF8)]),  # a surrogate, encoded as UTF-8
        (b"hobby=%C3", [("hobby", NOT_UTF8)]),  # truncated
        (b"hobby=caf\xc3\xa9", [("hobby", NOT_UTF8)]),  # raw bytes, read as Latin-1 otherwise
        (b"%68obby=%FF", [("hobby", NOT_UTF8)]),  # the name percent-encoded
        (b"hobby=%zz", [("hobby", BAD_ESCAPE)]),
        (b"hobby=a%2", [("hobby", BAD_ESCAPE)]),
        (b"hobby=100%", [("hobby", BAD_ESCAPE)]),
        (b"hobby=%%41", [("hobby", BAD_ESCAPE)]),
        (b"limit=1&limit=2", [("limit", "was given 2 times; give it once")]),
        (b"limit=1&hobby=x&limit=1&limit", [("limit", "was given 3 times; give it once")]),
        (
            b"hobby=%FF&limit=1&limit=2",
            [("hobby", NOT_UTF8), ("limit", "was given 2 times; give it once")],
        ),
    ],
)
def test_undecodable_or_repeated_parameters_are_named(
    raw: bytes, problems: list[tuple[str, str]]
) -> None:
    assert query_string_problems(raw, NAMES) == problems


@pytest.mark.parametrize(
    ("raw_path", "values", "problems"),
    [
        (b"/u/1/hobbies/chess", {"hobby": "chess"}, []),
        (b"/u/1/hobbies/100%25", {"hobby": "100%"}, []),
        (None, {"hobby": "%zz"}, []),
        (b"/u/1/hobbies/%zz", {"user_id": "1", "hobby": "%zz"}, [("hobby", BAD_ESCAPE)]),
        (b"/u/1/hobbies/%2", {"user_id": "1", "hobby": "%2"}, [("hobby", BAD_ESCAPE)]),
        (b"/u/1/hobbies/%", {"user_id": "1", "hobby": "%"}, [("hobby", BAD_ESCAPE)]),
        (b"/u/%/hobbies", {}, [("", BAD_ESCAPE)]),
        (b"/u/1/hobbies/a%FFb", {"hobby": "a\ufffdb"}, [("hobby", NOT_UTF8)]),
    ],
)
def test_a_path_with_a_malformed_escape_spoils_the_parameter_holding_it(
    raw_path: bytes | None, values: dict[str, str], problems: list[tuple[str, str]]
) -> None:
    assert path_problems(raw_path, values) == problems
