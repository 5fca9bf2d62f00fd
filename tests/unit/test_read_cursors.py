"""Page cursors: opaque, bound to their query, and refused when altered."""

import base64
import json

import pytest

from read_api.cursors import CursorCodec
from read_api.problems import InvalidParameter

CODEC = CursorCodec(b"key")


def test_a_cursor_round_trips_its_sort_key() -> None:
    cursor = CODEC.encode("orders{}", ["2026-01-05T09:30:00+00:00", "a-b"])

    assert CODEC.decode("orders{}", cursor, 2) == ["2026-01-05T09:30:00+00:00", "a-b"]
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor


def forged(payload: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return body + "." + CODEC.encode("s", ["x"]).split(".")[1]


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "no-dot",
        "a.b.c",
        "!!!.???",
        forged(["y"]),  # the MAC of another payload
        CODEC.encode("other scope", ["x"]),
        CursorCodec(b"other key").encode("s", ["x"]),
        "x" * 5000,
    ],
)
def test_a_cursor_not_made_for_this_query_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        CODEC.decode("s", cursor, 1)
    assert refused.value.field == "query.cursor"


@pytest.mark.parametrize("key", [["x", "y"], [], [True], [None], [1.5], [{"a": 1}]])
def test_a_signed_cursor_of_the_wrong_shape_is_refused(key: list[object]) -> None:
    cursor = CODEC.encode("s", key)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        CODEC.decode("s", cursor, 1)
