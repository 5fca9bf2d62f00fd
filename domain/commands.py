"""What a command says besides its arguments, what it decides, and what it answers: the values
the command-handling base (`domain.service`) works with."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.ports import Claim


@dataclass(frozen=True)
class ExpectedVersions:
    """The versions a client accepts the aggregate at (HTTP If-Match), or any existing one ("*").

    A command on an aggregate outside them is refused with StaleVersion; so is a creation, whose
    aggregate has no version yet. No set at all (None in CommandContext) means no condition.
    """

    versions: frozenset[int] = frozenset()
    any_existing: bool = False

    def admit(self, version: int) -> bool:
        return self.any_existing or version in self.versions

    def __str__(self) -> str:
        if self.any_existing:
            return "any existing version"
        if not self.versions:
            # e.g. HTTP If-Match with weak tags only: they never match, so no version is named
            return "a named version (the condition names none that can match)"
        return "version " + " or ".join(str(version) for version in sorted(self.versions))


ANY_EXISTING_VERSION = ExpectedVersions(any_existing=True)


@dataclass(frozen=True)
class CommandContext:
    """What the caller says about a command besides its arguments."""

    idempotency_key: str | None = None
    fingerprint: str = ""
    expected_versions: ExpectedVersions | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    idempotency_scope: str | None = None
    """Whose `idempotency_key` it is: for a key a client sent, the caller (its token's
    subject), so that one caller's key never meets another's; None for the keys the system
    derives itself (from an event, a job, a saga's step), which are stored as they are."""

    @property
    def recorded_key(self) -> str | None:
        """The key the command's idempotency record is stored and found under: the key itself,
        or, in a scope, the JSON array `[scope, key]`. That encoding tells every pair apart,
        whatever characters either holds, and no key the system derives starts with `[`."""
        if self.idempotency_key is None or self.idempotency_scope is None:
            return self.idempotency_key
        return json.dumps([self.idempotency_scope, self.idempotency_key], separators=(",", ":"))


@dataclass(frozen=True)
class CommandResult:
    id: UUID
    version: int
    position: int
    replayed: bool = False


@dataclass(frozen=True)
class ClaimChanges:
    """The unique values a command takes and gives up."""

    take: Sequence[Claim] = ()
    release: Sequence[Claim] = ()


@dataclass(frozen=True)
class Decision:
    """The aggregate after a command, and its claim changes."""

    aggregate: Aggregate
    claims: ClaimChanges = field(default_factory=ClaimChanges)
