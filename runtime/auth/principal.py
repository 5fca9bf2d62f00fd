"""Who is calling: the subject of a verified token, its roles and its scopes."""

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    """A person: may command and read only their own profile and orders (and what hangs off
    them: their payments, shipments, fulfilments)."""
    OPERATOR = "operator"
    """May do everything, including replay and admin endpoints."""
    SERVICE = "service"
    """A service account: may do only what its scopes (`<context>:read|write`) name."""


@dataclass(frozen=True)
class Principal:
    subject: str
    """The token's `sub`: for a user, their profile id (canonical lowercase UUID)."""
    roles: frozenset[Role]
    scopes: frozenset[str] = frozenset()

    def has(self, role: Role) -> bool:
        return role in self.roles

    def is_subject(self, owner: object) -> bool:
        """The caller is `owner` (a user id, as a UUID or a string in either case)."""
        return str(owner).lower() == self.subject.lower()


INSECURE_OPERATOR = Principal("insecure-mode", frozenset({Role.OPERATOR}))
"""Whom every request acts as when `STRATA_AUTH=insecure`."""
