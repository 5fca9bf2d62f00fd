"""`loads_unique`: the same value as the caller's decoder for every document without a repeated
member name, and `DuplicateMember` with the path of the first repeated one otherwise, whichever
decoder reads the document (jiter, or the fallback for what jiter refuses)."""

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.http.json_bodies import DuplicateMember, Loads, first_duplicate, loads_unique
from runtime.http.lean_route import _decode

DECODERS: list[Loads] = [json.loads, _decode]  # FastAPI's handler's, the lean route's

NAMES = st.text(alphabet=st.sampled_from(list('ab"\\/é\ud800\x01 ,:{}[]')), max_size=3)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), NAMES
)


class Obj(list[tuple[str, Any]]):
    """An object's members in order, repeats allowed."""


VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.lists(st.tuples(NAMES, inner), max_size=4).map(Obj)
    ),
    max_leaves=20,
)


def dump(value: Any, rng: random.Random) -> str:
    """`value` as JSON text, with random whitespace and escaping."""

    def space() -> str:
        return rng.choice(["", " ", "\n\t "])

    def text(value: Any) -> str:
        return json.dumps(value, ensure_ascii=rng.random() < 0.5)

    if isinstance(value, Obj):
        members = (space() + text(k) + space() + ":" + space() + dump(v, rng) for k, v in value)
        return "{" + space() + ",".join(members) + space() + "}"
    if isinstance(value, list):
        return "[" + ",".join(space() + dump(item, rng) + space() for item in value) + "]"
    return text(value)


def is_utf_8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def repeats(data: bytes) -> bool:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len(dict(pairs)) != len(pairs):
            raise KeyError
        return dict(pairs)

    try:
        json.loads(data, object_pairs_hook=unique)
    except KeyError:
        return True
    return False


@settings(max_examples=500)
@given(VALUES, st.integers(0, 2**32))
def test_as_the_decoder_unless_a_name_repeats(value: Any, seed: int) -> None:
    data = dump(value, random.Random(seed)).encode("utf-8", "surrogatepass")
    if not is_utf_8(data):  # a lone surrogate written raw: `json` would read it
        for decoder in DECODERS:
            with pytest.raises(UnicodeDecodeError):
                loads_unique(data, decoder)
        return
    repeated = repeats(data)
    assert (first_duplicate(data) is not None) == repeated
    for decoder in DECODERS:
        if repeated:
            with pytest.raises(DuplicateMember):
                loads_unique(data, decoder)
        else:
            assert repr(loads_unique(data, decoder)) == repr(decoder(data.decode("utf-8-sig")))


DEEP = b"[" * 300 + b'{"x": 1, "y": {"x": 2}}' + b"]" * 300  # deeper than jiter goes


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (b'{"name": "a", "name": "b"}', ("name",)),
        (b'{"na\\u006de": "a", "name": "b"}', ("name",)),
        (b'{"a": {"b": [0, {"c": 1, "d": "c", "c": 2}]}}', ("a", "b", 1, "c")),
        (b'{"a": {"x": 1}, "b": {"x": 1}, "a": 2}', ("a",)),
        (b'{"a": "x\\",\\"a\\":{", "a": 1}', ("a",)),
        (b'[{}, {"k": [], "k": []}]', (1, "k")),
        (b'\xef\xbb\xbf{"a": 1, "a": 2}', ("a",)),
        (b'{"\\ud800": 1, "\\ud800": 2}', ("\ud800",)),
        (b"[" * 300 + b'{"x": 1, "x": 2}' + b"]" * 300, (0,) * 300 + ("x",)),
    ],
)
def test_the_path_of_the_repeated_member(data: bytes, path: tuple[str | int, ...]) -> None:
    for decoder in DECODERS:
        with pytest.raises(DuplicateMember) as raised:
            loads_unique(data, decoder)
        assert raised.value.path == path


@pytest.mark.parametrize(
    "data", [DEEP, b'{"a": "\\ud800", "b": "a"}', b'\xef\xbb\xbf{"a": {"a": {"a": 1}}}']
)
def test_documents_jiter_refuses_decode_as_before(data: bytes) -> None:
    for decoder in DECODERS:
        assert loads_unique(data, decoder) == decoder(data.decode("utf-8-sig"))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_documents_in_another_encoding_than_utf_8_are_refused(encoding: str) -> None:
    """JSON between systems is UTF-8 (RFC 8259 §8.1): `json` would read these."""
    data = '{"a": 1, "b": 2}'.encode(encoding)
    for decoder in DECODERS:
        with pytest.raises((UnicodeDecodeError, json.JSONDecodeError)):
            loads_unique(data, decoder)


def test_malformed_documents_fail_as_the_decoder_fails() -> None:
    with pytest.raises(json.JSONDecodeError) as raised:
        loads_unique(b'{"a": 1, "a": 2,}')
    assert raised.value.pos == 16
