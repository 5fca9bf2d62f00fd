"""Unit tests for the UserProfile aggregate."""

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain.errors import DomainError, InvalidValue
from domain.users.profile import MAX_HOBBIES, UserProfile


def new_profile(name: str = "Ada Lovelace", email: str = "ada@example.com") -> UserProfile:
    """A registered profile whose Registered event has already been collected."""
    profile = UserProfile.register(name, email)
    profile.collect_events()
    return profile


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


# hobbies


def test_add_hobby_appends_stripped_hobby() -> None:
    profile = new_profile()
    profile.add_hobby("  Chess ")
    profile.add_hobby("Go")
    assert profile.hobbies == ["Chess", "Go"]
    events = profile.collect_events()
    assert [type(e) for e in events] == [UserProfile.HobbyAdded, UserProfile.HobbyAdded]
    assert [e.hobby for e in events] == ["Chess", "Go"]


@pytest.mark.parametrize("hobby", ["h", "h" * 40])
def test_add_hobby_accepts_1_to_40_characters(hobby: str) -> None:
    profile = new_profile()
    profile.add_hobby(hobby)
    assert profile.hobbies == [hobby]


@pytest.mark.parametrize(("hobby", "length"), [("", 0), ("   ", 0), ("h" * 41, 41)])
def test_add_hobby_rejects_length_out_of_bounds(hobby: str, length: int) -> None:
    profile = new_profile()
    with pytest.raises(InvalidValue, match=f"^hobby must be 1 to 40 characters, got {length}$"):
        profile.add_hobby(hobby)
    assert profile.hobbies == []


@pytest.mark.parametrize("duplicate", ["Chess", "chess", "CHESS", "  cHeSs "])
def test_add_hobby_rejects_case_insensitive_duplicates(duplicate: str) -> None:
    profile = new_profile()
    profile.add_hobby("Chess")
    profile.collect_events()
    with pytest.raises(DomainError, match="already in the profile") as caught:
        profile.add_hobby(duplicate)
    assert repr(duplicate.strip()) in str(caught.value)
    assert profile.hobbies == ["Chess"]
    assert len(profile.collect_events()) == 0


def test_add_hobby_rejects_the_21st_hobby() -> None:
    profile = new_profile()
    for i in range(MAX_HOBBIES):
        profile.add_hobby(f"hobby {i}")
    assert MAX_HOBBIES == 20
    assert len(profile.hobbies) == 20
    profile.collect_events()
    with pytest.raises(DomainError, match="at most 20 hobbies"):
        profile.add_hobby("one too many")
    assert len(profile.hobbies) == 20
    assert len(profile.collect_events()) == 0


def test_a_full_profile_accepts_a_hobby_again_after_removing_one() -> None:
    profile = new_profile()
    for i in range(MAX_HOBBIES):
        profile.add_hobby(f"hobby {i}")
    profile.remove_hobby("hobby 0")
    profile.add_hobby("knitting")
    assert len(profile.hobbies) == 20
    assert profile.hobbies[-1] == "knitting"
    assert "hobby 0" not in profile.hobbies


@pytest.mark.parametrize("spelling", ["Chess", "chess", " CHESS "])
def test_remove_hobby_matches_case_insensitively_and_records_stored_spelling(
    spelling: str,
) -> None:
    profile = new_profile()
    profile.add_hobby("Go")
    profile.add_hobby("Chess")
    profile.collect_events()
    profile.remove_hobby(spelling)
    assert profile.hobbies == ["Go"]
    events = profile.collect_events()
    assert len(events) == 1
    assert isinstance(events[0], UserProfile.HobbyRemoved)
    assert events[0].hobby == "Chess"


def test_remove_hobby_rejects_absent_hobby() -> None:
    profile = new_profile()
    profile.add_hobby("Go")
    profile.collect_events()
    with pytest.raises(DomainError) as caught:
        profile.remove_hobby(" Chess ")
    assert str(caught.value) == "hobby 'Chess' is not in the profile"
    assert profile.hobbies == ["Go"]
    assert len(profile.collect_events()) == 0


@pytest.mark.parametrize("forbidden", ["\x00", "\x1f", "\x85", "\ud800", "\ufffe"])
def test_remove_hobby_follows_the_text_rule_before_trimming(forbidden: str) -> None:
    profile = new_profile()
    profile.add_hobby("Go")
    profile.collect_events()
    with pytest.raises(InvalidValue, match=r"^hobby must not contain U\+"):
        profile.remove_hobby(f"Go{forbidden}")  # \x1f and \x85 are whitespace to str.strip
    assert profile.hobbies == ["Go"]


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


# deactivate / reactivate


def test_deactivate_and_reactivate_toggle_active() -> None:
    profile = new_profile()
    profile.deactivate()
    assert profile.active is False
    profile.reactivate()
    assert profile.active is True
    events = profile.collect_events()
    assert [type(e) for e in events] == [UserProfile.Deactivated, UserProfile.Reactivated]


def test_deactivate_twice_is_rejected() -> None:
    profile = new_profile()
    profile.deactivate()
    profile.collect_events()
    with pytest.raises(DomainError, match="already deactivated"):
        profile.deactivate()
    assert len(profile.collect_events()) == 0


def test_reactivate_an_active_profile_is_rejected() -> None:
    profile = new_profile()
    with pytest.raises(DomainError, match="already active"):
        profile.reactivate()
    assert len(profile.collect_events()) == 0


CHANGES: dict[str, Callable[[UserProfile], None]] = {
    "rename": lambda p: p.rename("Someone Else"),
    "rename_invalid": lambda p: p.rename(""),
    "change_email": lambda p: p.change_email("other@example.com"),
    "change_email_invalid": lambda p: p.change_email("nope"),
    "add_hobby": lambda p: p.add_hobby("Painting"),
    "add_hobby_invalid": lambda p: p.add_hobby(""),
    "remove_hobby": lambda p: p.remove_hobby("Chess"),
    "change_location": lambda p: p.change_location("Berlin", "DE"),
    "change_location_invalid": lambda p: p.change_location("Berlin", "XX"),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_a_deactivated_profile_rejects_every_change(
    change: Callable[[UserProfile], None],
) -> None:
    profile = new_profile()
    profile.add_hobby("Chess")
    profile.change_location("London", "GB")
    profile.deactivate()
    profile.collect_events()
    before = dict(vars(profile))
    hobbies_before = list(profile.hobbies)

    with pytest.raises(DomainError) as caught:
        change(profile)
    # The inactive-profile rule wins over input validation: the message says why.
    assert type(caught.value) is DomainError
    assert str(caught.value) == "profile is deactivated; reactivate it before changing it"
    assert len(profile.collect_events()) == 0
    assert vars(profile) == before
    assert profile.hobbies == hobbies_before


@pytest.mark.parametrize(
    "change", [CHANGES["rename"], CHANGES["change_email"], CHANGES["add_hobby"]]
)
def test_a_reactivated_profile_accepts_changes_again(
    change: Callable[[UserProfile], None],
) -> None:
    profile = new_profile()
    profile.deactivate()
    profile.reactivate()
    profile.collect_events()
    change(profile)
    assert len(profile.collect_events()) == 1


# property: hobby add/remove against a reference model

hobby_words = st.sampled_from([f"hobby{i}" for i in range(30)] + ["Chess", "Go"])
hobby_spelling = st.tuples(
    hobby_words,
    st.sampled_from([str, str.upper, str.lower, str.title]),
    st.sampled_from(["", " ", "\u3000"]),
).map(lambda t: t[2] + t[1](t[0]) + t[2])
hobby_text = st.one_of(
    hobby_spelling,
    hobby_spelling,
    hobby_spelling,
    st.just("   "),
    st.just("x" * 41),
)
hobby_commands = st.lists(
    st.tuples(st.sampled_from(["add", "add", "add", "remove"]), hobby_text),
    max_size=80,
)


@settings(max_examples=150, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefill=st.one_of(st.integers(min_value=0, max_value=MAX_HOBBIES), st.sampled_from([19, 20])),
    commands=hobby_commands,
)
def test_hobbies_follow_reference_model(prefill: int, commands: list[tuple[str, str]]) -> None:
    # A prefix of distinct adds brings the profile near (or to) the limit, so random commands
    # also exercise the full-profile rule.
    commands = [("add", f"hobby{i}") for i in range(prefill)] + commands
    profile = new_profile()
    model: list[str] = []
    accepted: list[str] = []

    for command, raw in commands:
        text = raw.strip()
        present = [h for h in model if h.casefold() == text.casefold()]
        if command == "add":
            if not 1 <= len(text) <= 40:
                with pytest.raises(InvalidValue, match="hobby must be 1 to 40 characters"):
                    profile.add_hobby(raw)
            elif present:
                with pytest.raises(DomainError, match="already in the profile"):
                    profile.add_hobby(raw)
            elif len(model) >= 20:
                event("full")
                with pytest.raises(DomainError, match="at most 20 hobbies"):
                    profile.add_hobby(raw)
            else:
                profile.add_hobby(raw)
                model.append(text)
                accepted.append("HobbyAdded")
        elif not 1 <= len(text) <= 40:
            with pytest.raises(InvalidValue, match="hobby must be 1 to 40 characters"):
                profile.remove_hobby(raw)
        elif present:
            profile.remove_hobby(raw)
            model.remove(present[0])
            accepted.append("HobbyRemoved")
        else:
            with pytest.raises(DomainError, match="is not in the profile"):
                profile.remove_hobby(raw)

        assert profile.hobbies == model
        assert len(profile.hobbies) <= MAX_HOBBIES
        assert len({h.casefold() for h in profile.hobbies}) == len(profile.hobbies)

    # Exactly the accepted commands appended events, each of the matching kind.
    events = profile.collect_events()
    assert [type(e).__name__ for e in events] == accepted
    assert profile.version == 1 + len(accepted)
