"""The identity service's input rules, without I/O: passwords, form bodies, bootstrap clients."""

import pytest

from identity.forms import MalformedForm, parse_form
from identity.passwords import InvalidPassword, Passwords, password_problem
from identity.settings import parse_bootstrap_clients


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "10 to 256"),
        ("x" * 257, "10 to 256"),
        ("tab\there is bad", "U+0009"),
        ("zero width ok\u200b?", None),
        ("  spaces count  ", None),
        ("ünïcödé pässwörd", None),
    ],
)
def test_password_rules(password: str, problem: str | None) -> None:
    found = password_problem(password)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_a_password_hash_matches_its_password_only() -> None:
    passwords = Passwords("CHEAPEST")
    stored = passwords.hash("a fine password")
    assert passwords.matches(stored, "a fine password")
    assert not passwords.matches(stored, "a fine password ")
    assert not passwords.matches(None, "a fine password")
    assert not passwords.matches("not a hash", "a fine password")
    with pytest.raises(InvalidPassword):
        passwords.hash("short")


def test_a_stronger_profile_asks_for_a_rehash() -> None:
    cheap = Passwords("CHEAPEST").hash("a fine password")
    assert Passwords("RFC_9106_LOW_MEMORY").needs_rehash(cheap)
    assert not Passwords("CHEAPEST").needs_rehash(cheap)


def test_a_form_is_parsed_strictly() -> None:
    assert parse_form(b"grant_type=password&username=a%40b.org&password=p+q%26") == {
        "grant_type": "password",
        "username": "a@b.org",
        "password": "p q&",
    }
    assert parse_form(b"") == {}
    for malformed in (b"a=1&a=2", b"a=%zz", b"a=%ff", b"=&=", b"a=%0a"):
        with pytest.raises(MalformedForm):
            parse_form(malformed)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"grant_type=password&password=%FF%FE", "a percent-encoded value is not UTF-8"),
        ("grant_type=password&password=é".encode(), "byte 29 is not ASCII"),
    ],
)
def test_a_malformed_form_is_named_for_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedForm, match=reason):
        parse_form(body)


def test_bootstrap_clients_are_validated() -> None:
    (saga,) = parse_bootstrap_clients(
        '[{"client_id": "saga", "role": "service", "scope": "orders:write", "secret": "'
        + "s" * 16
        + '"}]'
    )
    assert (saga.client_id, saga.role, saga.scope) == ("saga", "service", "orders:write")
    for bad in (
        "{}",
        "not json",
        '[{"client_id": "Saga", "role": "service", "secret": "ssssssssssssssss"}]',
        '[{"client_id": "saga", "role": "admin", "secret": "ssssssssssssssss"}]',
        '[{"client_id": "saga", "role": "service", "secret": "short"}]',
        '[{"client_id": "saga", "role": "service", "scope": "all", "secret": "ssssssssssssssss"}]',
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - each names its own problem
            parse_bootstrap_clients(bad)
