"""Unit tests for a UserProfile's details: registering it, renaming it, and changing its email
address and its location, each normalised and bounded, a change to the same value a no-op."""

import pytest

from domain.errors import InvalidValue
from domain.users.profile import UserProfile
from tests.support.aggregates import new_profile

# register


def test_register_records_normalised_name_and_email() -> None:
    profile = UserProfile.register("  Ada Lovelace  ", " Ada@EXAMPLE.com ")
    assert profile.name == "Ada Lovelace"
    assert profile.email == "Ada@example.com"
    assert profile.hobbies == []
    assert profile.city is None
    assert profile.country is None
    assert profile.active is True
    assert profile.version == 1

    events = profile.collect_events()
    assert len(events) == 1
    (registered,) = events
    assert isinstance(registered, UserProfile.Registered)
    assert registered.name == "Ada Lovelace"
    assert registered.email == "Ada@example.com"
    assert registered.originator_id == profile.id


def test_two_registrations_get_distinct_ids() -> None:
    assert (
        UserProfile.register("A", "a@example.com").id
        != UserProfile.register("A", "a@example.com").id
    )


@pytest.mark.parametrize("name", ["A", "x" * 100, " " + "y" * 100 + " "])
def test_register_accepts_names_of_1_to_100_characters(name: str) -> None:
    assert UserProfile.register(name, "a@example.com").name == name.strip()


@pytest.mark.parametrize(("name", "length"), [("", 0), ("   ", 0), ("z" * 101, 101)])
def test_register_rejects_name_out_of_bounds(name: str, length: int) -> None:
    with pytest.raises(InvalidValue) as caught:
        UserProfile.register(name, "a@example.com")
    assert str(caught.value) == f"name must be 1 to 100 characters, got {length}"


def test_a_names_length_is_its_code_points_as_sent() -> None:
    """As the README says: an accent sent as its own combining mark counts, as a column of
    `varchar(100)` would count it; the name is kept as sent, not normalised."""
    decomposed = "e\u0301"  # é as e and U+0301
    assert UserProfile.register(decomposed * 50, "a@example.com").name == decomposed * 50
    with pytest.raises(InvalidValue, match=r"^name must be 1 to 100 characters, got 102$"):
        UserProfile.register(decomposed * 51, "a@example.com")


@pytest.mark.parametrize("email", ["not-an-email", "a@localhost", "@example.com", ""])
def test_register_rejects_invalid_email(email: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        UserProfile.register("Ada", email)
    assert f"email {email!r} is not a valid address" in str(caught.value)


# rename


def test_rename_changes_name_and_appends_one_event() -> None:
    profile = new_profile()
    profile.rename("  Ada King  ")
    assert profile.name == "Ada King"
    events = profile.collect_events()
    assert len(events) == 1
    assert isinstance(events[0], UserProfile.Renamed)
    assert events[0].name == "Ada King"
    assert profile.version == 2


@pytest.mark.parametrize("same", ["Ada Lovelace", "  Ada Lovelace\u3000"])
def test_rename_to_the_same_name_is_a_no_op(same: str) -> None:
    profile = new_profile()
    profile.rename(same)
    assert len(profile.collect_events()) == 0
    assert profile.version == 1


def test_rename_is_case_sensitive() -> None:
    profile = new_profile()
    profile.rename("ADA LOVELACE")
    assert len(profile.collect_events()) == 1
    assert profile.name == "ADA LOVELACE"


@pytest.mark.parametrize(("name", "length"), [("", 0), (" \u00a0 ", 0), ("n" * 101, 101)])
def test_rename_rejects_name_out_of_bounds(name: str, length: int) -> None:
    profile = new_profile()
    with pytest.raises(InvalidValue, match=f"^name must be 1 to 100 characters, got {length}$"):
        profile.rename(name)
    assert profile.name == "Ada Lovelace"
    assert len(profile.collect_events()) == 0


@pytest.mark.parametrize("name", ["\u0301", "\u0301\u0308", " \u0301 \u0301 "], ids=ascii)
def test_a_name_of_combining_marks_alone_is_refused(name: str) -> None:
    with pytest.raises(InvalidValue, match=r"^name must hold a base character"):
        UserProfile.register(name, "a@example.com")
    profile = new_profile()
    with pytest.raises(InvalidValue, match=r"^name must hold a base character"):
        profile.rename(name)
    with pytest.raises(InvalidValue, match=r"^city must hold a base character"):
        profile.change_location(name, "FR")
    assert len(profile.collect_events()) == 0


@pytest.mark.parametrize("name", ["Zoe\u0308", "\u0926\u0947\u0935", "\u1100\u1161"], ids=ascii)
def test_a_name_with_combining_marks_on_a_base_is_kept(name: str) -> None:
    assert UserProfile.register(name, "a@example.com").name == name


# change_email


def test_change_email_records_new_and_previous_address() -> None:
    profile = new_profile(email="ada@example.com")
    profile.change_email(" ada.king@EXAMPLE.org ")
    assert profile.email == "ada.king@example.org"
    events = profile.collect_events()
    assert len(events) == 1
    (changed,) = events
    assert isinstance(changed, UserProfile.EmailChanged)
    assert changed.email == "ada.king@example.org"
    assert changed.previous_email == "ada@example.com"


@pytest.mark.parametrize("same", ["ada@example.com", "ada@EXAMPLE.COM", "  ada@example.com "])
def test_change_email_to_an_equivalent_address_is_a_no_op(same: str) -> None:
    profile = new_profile(email="ada@example.com")
    profile.change_email(same)
    assert len(profile.collect_events()) == 0
    assert profile.email == "ada@example.com"


def test_change_email_rejects_invalid_address() -> None:
    profile = new_profile()
    with pytest.raises(InvalidValue, match="email 'nope' is not a valid address"):
        profile.change_email("nope")
    assert profile.email == "ada@example.com"
    assert len(profile.collect_events()) == 0


# change_location


def test_change_location_normalises_country_to_upper_case() -> None:
    profile = new_profile()
    profile.change_location("  London ", " gb ")
    assert (profile.city, profile.country) == ("London", "GB")
    events = profile.collect_events()
    assert len(events) == 1
    assert isinstance(events[0], UserProfile.LocationChanged)
    assert (events[0].city, events[0].country) == ("London", "GB")


def test_change_location_to_the_same_place_is_a_no_op() -> None:
    profile = new_profile()
    profile.change_location("Paris", "FR")
    profile.collect_events()
    profile.change_location(" Paris ", "fr")
    assert len(profile.collect_events()) == 0


@pytest.mark.parametrize(("city", "country"), [("Paris", "US"), ("Lyon", "FR")])
def test_change_location_with_either_part_different_appends_an_event(
    city: str, country: str
) -> None:
    profile = new_profile()
    profile.change_location("Paris", "FR")
    profile.collect_events()
    profile.change_location(city, country)
    assert len(profile.collect_events()) == 1
    assert (profile.city, profile.country) == (city, country)


@pytest.mark.parametrize("country", ["XX", "GBR", "uk", ""])
def test_change_location_rejects_unknown_country(country: str) -> None:
    profile = new_profile()
    with pytest.raises(InvalidValue) as caught:
        profile.change_location("London", country)
    assert str(caught.value) == f"country {country!r} is not an ISO 3166-1 alpha-2 code"
    assert (profile.city, profile.country) == (None, None)


@pytest.mark.parametrize(("city", "length"), [("  ", 0), ("c" * 101, 101)])
def test_change_location_rejects_city_out_of_bounds(city: str, length: int) -> None:
    profile = new_profile()
    with pytest.raises(InvalidValue, match=f"^city must be 1 to 100 characters, got {length}$"):
        profile.change_location(city, "GB")
    assert len(profile.collect_events()) == 0
