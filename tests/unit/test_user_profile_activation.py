"""Unit tests for deactivating and reactivating a UserProfile: a deactivated profile refuses
every change, before validating its input, until it is reactivated."""

from collections.abc import Callable

import pytest

from domain.errors import DomainError
from domain.users.profile import UserProfile
from tests.support.aggregates import new_profile

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
