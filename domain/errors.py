"""Domain errors. Each message says what was wrong, in words a client can act on."""

from datetime import datetime


class DomainError(Exception):
    """A command broke a business rule."""


class InvalidValue(DomainError):
    """A value is malformed or out of range (the domain's own guard behind API validation)."""


class AggregateNotFound(DomainError):
    """No aggregate has the given id."""


class NotFoundAtTime(AggregateNotFound):
    """The aggregate exists, but it had not been created yet at the given instant."""

    def __init__(self, subject: str, at: datetime, created: datetime) -> None:
        super().__init__(
            f"{subject} did not exist yet at {at.isoformat()};"
            f" it was created at {created.isoformat()}"
        )
        self.at = at
        self.created = created

    def said_of(self, subject: str) -> "NotFoundAtTime":
        """The same, naming the aggregate as `subject` (as its caller named it)."""
        return NotFoundAtTime(subject, self.at, self.created)


class NoSuchVersion(AggregateNotFound):
    """The aggregate exists, but it has not reached the given version."""


class ValueTaken(DomainError):
    """A unique value (such as an email address) is already held by another aggregate."""


class StaleVersion(DomainError):
    """The client's expected version is not the aggregate's current version."""


class IdempotencyKeyReused(DomainError):
    """An idempotency key was sent again with a different request."""


class TooMuchContention(DomainError):
    """A command kept losing optimistic-concurrency races and gave up."""


class UnknownReference(DomainError):
    """A command names an aggregate of another context that this context has not heard of."""
