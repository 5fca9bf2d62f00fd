"""The UserProfile aggregate and its events."""

from typing import Any

from eventsourcing.domain import Aggregate

from domain.aggregate import EventSourcedAggregate
from domain.errors import DomainError, InvalidValue
from domain.values import bounded_text, caseless, country_code, named_text, normalized_email

MAX_NAME_LENGTH = 100
MAX_HOBBY_LENGTH = 40
MAX_HOBBIES = 20
MAX_CITY_LENGTH = 100
DOT_SEGMENTS = (".", "..")
"""Hobbies no URL path can name: a client or proxy following RFC 3986 removes the segment (and
`%2E` is `.` to it), so such a hobby could be added but never removed by `DELETE .../{hobby}`."""


def addable_hobby(hobby: str) -> str:
    """`hobby` (trimmed) if a profile may take it: not `.` or `..`."""
    if hobby in DOT_SEGMENTS:
        raise InvalidValue(
            f"hobby may not be {hobby!r}: a URL path cannot name it, so it could not be removed"
        )
    return hobby


class UserProfile(EventSourcedAggregate):
    """A person's profile. A deactivated profile accepts no change but reactivation."""

    class Registered(Aggregate.Created):
        class_version = 1
        name: str
        email: str

    class Renamed(Aggregate.Event):
        class_version = 1
        name: str

        def apply(self, aggregate: Any) -> None:
            aggregate.name = self.name

    class EmailChanged(Aggregate.Event):
        class_version = 1
        email: str
        previous_email: str

        def apply(self, aggregate: Any) -> None:
            aggregate.email = self.email

    class HobbyAdded(Aggregate.Event):
        class_version = 1
        hobby: str

        def apply(self, aggregate: Any) -> None:
            aggregate.hobbies.append(self.hobby)

    class HobbyRemoved(Aggregate.Event):
        class_version = 1
        hobby: str

        def apply(self, aggregate: Any) -> None:
            aggregate.hobbies.remove(self.hobby)

    class LocationChanged(Aggregate.Event):
        class_version = 1
        city: str
        country: str

        def apply(self, aggregate: Any) -> None:
            aggregate.city = self.city
            aggregate.country = self.country

    class Deactivated(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.active = False

    class Reactivated(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.active = True

    def __init__(self, name: str, email: str) -> None:
        self.name = name
        self.email = email
        self.hobbies: list[str] = []
        self.city: str | None = None
        self.country: str | None = None
        self.active = True

    @classmethod
    def register(cls, name: str, email: str) -> "UserProfile":
        name = bounded_text(name, field="name", max_length=MAX_NAME_LENGTH)
        return cls._create(cls.Registered, name=name, email=normalized_email(email))

    def rename(self, name: str) -> None:
        self._require_active()
        name = bounded_text(name, field="name", max_length=MAX_NAME_LENGTH)
        if name != self.name:
            self.trigger_event(self.Renamed, name=name)

    def change_email(self, email: str) -> None:
        self._require_active()
        email = normalized_email(email)
        if email != self.email:
            self.trigger_event(self.EmailChanged, email=email, previous_email=self.email)

    def add_hobby(self, hobby: str) -> None:
        self._require_active()
        hobby = addable_hobby(bounded_text(hobby, field="hobby", max_length=MAX_HOBBY_LENGTH))
        if self._find_hobby(hobby) is not None:
            raise DomainError(f"hobby {hobby!r} is already in the profile")
        if len(self.hobbies) >= MAX_HOBBIES:
            raise DomainError(f"a profile holds at most {MAX_HOBBIES} hobbies")
        self.trigger_event(self.HobbyAdded, hobby=hobby)

    def remove_hobby(self, hobby: str) -> None:
        """Remove the hobby named as it would be added: trimmed, in any letter case (also `.` or
        `..`, which profiles took before `addable_hobby` refused them, and combining marks alone,
        taken before `bounded_text` refused them)."""
        self._require_active()
        hobby = named_text(hobby, field="hobby", max_length=MAX_HOBBY_LENGTH)
        present = self._find_hobby(hobby)
        if present is None:
            raise DomainError(f"hobby {hobby!r} is not in the profile")
        self.trigger_event(self.HobbyRemoved, hobby=present)

    def change_location(self, city: str, country: str) -> None:
        self._require_active()
        city = bounded_text(city, field="city", max_length=MAX_CITY_LENGTH)
        country = country_code(country)
        if (city, country) != (self.city, self.country):
            self.trigger_event(self.LocationChanged, city=city, country=country)

    def deactivate(self) -> None:
        if not self.active:
            raise DomainError("profile is already deactivated")
        self.trigger_event(self.Deactivated)

    def reactivate(self) -> None:
        if self.active:
            raise DomainError("profile is already active")
        self.trigger_event(self.Reactivated)

    def _require_active(self) -> None:
        if not self.active:
            raise DomainError("profile is deactivated; reactivate it before changing it")

    def _find_hobby(self, hobby: str) -> str | None:
        """Hobbies compare by Unicode's canonical caseless match: 'Chess' and 'chess' are one
        hobby, and so are 'é' and 'e' followed by a combining acute accent."""
        wanted = caseless(hobby)
        return next((h for h in self.hobbies if caseless(h) == wanted), None)
