"""Position tokens (eventlog/position_tokens.py): what commands answer and reads wait for."""

import pytest

from eventlog.position_tokens import PositionToken, format_token, parse_token


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("users:120:p07", PositionToken("users", 120, 7)),
        ("orders:1:p15", PositionToken("orders", 1, 15)),
        ("users:120", PositionToken("users", 120, None)),
    ],
)
def test_a_token_round_trips(text: str, token: PositionToken) -> None:
    assert parse_token(text) == token
    assert str(token) == format_token(token.context, token.value, token.partition) == text


@pytest.mark.parametrize(
    "text",
    [
        "users",
        "users:",
        "users:1:",
        "users:1:p",
        "users:1:p7",
        "users:1:p16",
        "users:1:P07",
        "users:1:p007",
        "Users:1",
        "users:-1",
        "users:1\n",
        "users:1:p07:p08",
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"not <context>:<n>|not in p00"):
        parse_token(text)
