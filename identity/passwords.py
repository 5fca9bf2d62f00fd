"""Passwords: what one may be, and their argon2id hashes (argon2-cffi's defaults, RFC 9106)."""

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from domain.values import text_problem

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
"""Characters. The upper bound keeps hashing cheap to refuse, not cheap to attack."""


class InvalidPassword(ValueError):
    pass


def password_problem(password: str) -> str | None:
    """Why `password` is refused (None if it is fine): length bounds and the text rule. Any
    other character is allowed, spaces and every script included, and nothing is stripped."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        return (
            f"must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters,"
            f" got {len(password)}"
        )
    return text_problem(password)


class Passwords:
    """Hashes and checks passwords. Every check costs one hash, also for an unknown account:
    the time of an answer does not tell whether the account exists."""

    def __init__(self, profile: str = "RFC_9106_LOW_MEMORY") -> None:
        self._hasher = PasswordHasher.from_parameters(getattr(profiles, profile))
        self._decoy = self._hasher.hash("a password no account has")

    def hash(self, password: str) -> str:
        problem = password_problem(password)
        if problem is not None:
            raise InvalidPassword(f"password {problem}")
        return self._hasher.hash(password)

    def matches(self, stored_hash: str | None, password: str) -> bool:
        """Whether `password` is the one of `stored_hash` (None: no such account)."""
        try:
            self._hasher.verify(stored_hash or self._decoy, password)
        except (VerificationError, InvalidHashError):
            return False
        return stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
