"""Unit tests for a UserProfile's hobbies: 1 to 40 characters, unique ignoring case, at most 20,
removed by any spelling; and random adds and removes against a reference model."""

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain.errors import DomainError, InvalidValue
from domain.users.profile import MAX_HOBBIES, UserProfile
from tests.support.aggregates import collected, new_profile

# hobbies


def test_add_hobby_appends_stripped_hobby() -> None:
    profile = new_profile()
    profile.add_hobby("  Chess ")
    profile.add_hobby("Go")
    assert profile.hobbies == ["Chess", "Go"]
    events = collected(profile)
    assert [type(e) for e in events] == [UserProfile.HobbyAdded, UserProfile.HobbyAdded]
    assert [e.hobby for e in events if isinstance(e, UserProfile.HobbyAdded)] == ["Chess", "Go"]


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


@pytest.mark.parametrize("hobby", [".", "..", "  ..  ", "\u3000."])
def test_add_hobby_rejects_a_dot_segment(hobby: str) -> None:
    """`.` and `..` cannot be named in a URL path, so they could not be removed."""
    profile = new_profile()
    with pytest.raises(InvalidValue, match=r"^hobby may not be '\.{1,2}': a URL path cannot"):
        profile.add_hobby(hobby)
    assert profile.hobbies == []
    assert collected(profile) == []


@pytest.mark.parametrize("hobby", ["...", ". .", ".a", "a..", "%2E%2E"])
def test_add_hobby_accepts_dots_that_are_not_a_dot_segment(hobby: str) -> None:
    profile = new_profile()
    profile.add_hobby(hobby)
    assert profile.hobbies == [hobby]


@pytest.mark.parametrize("hobby", [".", ".."])
def test_remove_hobby_removes_a_dot_segment_stored_before_the_rule(hobby: str) -> None:
    profile = new_profile()
    profile.trigger_event(UserProfile.HobbyAdded, hobby=hobby)
    profile.remove_hobby(f" {hobby}")
    assert profile.hobbies == []


def test_add_hobby_rejects_combining_marks_alone() -> None:
    profile = new_profile()
    with pytest.raises(InvalidValue, match="hobby must hold a base character"):
        profile.add_hobby(" \u0301\u0302 ")


def test_remove_hobby_removes_combining_marks_stored_before_the_rule() -> None:
    profile = new_profile()
    profile.trigger_event(UserProfile.HobbyAdded, hobby="\u0301")
    profile.remove_hobby("\u0301 ")
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


@pytest.mark.parametrize(
    ("stored", "spelling"),
    [
        ("\u00e9checs", "e\u0301checs"),  # é, and e with a combining acute accent
        ("e\u0301checs", "\u00c9CHECS"),
        ("Stra\u00dfe", "STRASSE"),  # ß folds to ss
        ("\u1e9b\u0323", "\u1e61\u0323"),  # long s with dots: equal only after NFD
    ],
    ids=ascii,
)
def test_hobbies_match_by_canonical_caseless_equality(stored: str, spelling: str) -> None:
    profile = new_profile()
    profile.add_hobby(stored)
    with pytest.raises(DomainError, match="already in the profile"):
        profile.add_hobby(spelling)
    profile.remove_hobby(spelling)
    assert profile.hobbies == []


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


# property: hobby add/remove against a reference model

hobby_words = st.sampled_from([f"hobby{i}" for i in range(30)] + ["Chess", "Go"])
SPELLINGS: list[Callable[[str], str]] = [str, str.upper, str.lower, str.title]
hobby_spelling = st.tuples(
    hobby_words,
    st.sampled_from(SPELLINGS),
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
