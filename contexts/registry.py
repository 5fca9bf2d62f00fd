"""The declaration of a bounded context, and the registry that holds the declared ones.

Everything a process needs to know about a context follows from its declaration: the settings
variable of its event store (`STRATA_<NAME>_DATABASE_URL`), its SQLite file in the embedded mode
(`<name>.sqlite`), its JetStream stream (`ES_<NAME>`, subjects `es.<name>.>`), its application,
its aggregates and their events, and the router of its command endpoints. A registry is immutable:
`Registry.with_(extra)` is a new one (how a test adds a context without touching the real one).
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Transcoding
from fastapi import APIRouter

from domain.service import CommandService
from eventlog.replicas import Replica
from runtime.settings import database_url_field

NAME = re.compile(r"^[a-z][a-z0-9]*$")
RESERVED_NAMES = frozenset({"read"})
"""`read` is the read-model database (`STRATA_READ_DATABASE_URL`), not a context."""


def sqlite_file(context: str) -> str:
    """A context's event store's file in the embedded mode's data directory."""
    return f"{context}.sqlite"


@dataclass(frozen=True)
class BoundedContext:
    """One context, declared once.

    `replicas` are what it keeps of other contexts, fed by their events (it never asks them).
    """

    name: str
    application: type[CommandService]
    aggregates: tuple[type[Aggregate], ...]
    router: APIRouter
    replicas: tuple[Replica, ...] = ()

    def __post_init__(self) -> None:
        if not NAME.match(self.name) or self.name in RESERVED_NAMES:
            raise ValueError(f"a context name is lowercase letters and digits, not {self.name!r}")
        if self.application.name != self.name:
            raise ValueError(
                f"context {self.name!r} declares application {self.application.__name__},"
                f" whose name is {self.application.name!r}"
            )
        if not self.aggregates:
            raise ValueError(f"context {self.name!r} declares no aggregate")
        if any(replica.upstream == self.name for replica in self.replicas):
            raise ValueError(f"context {self.name!r} cannot follow itself")

    @property
    def settings_field(self) -> str:
        """The settings field of its event store's PostgreSQL URL (stack mode)."""
        return database_url_field(self.name)

    @property
    def database_url_variable(self) -> str:
        return f"STRATA_{self.settings_field.upper()}"

    @property
    def sqlite_file(self) -> str:
        return sqlite_file(self.name)

    @property
    def database_name(self) -> str:
        """Its event store's database in the deployments (compose, scripts/stack)."""
        return f"strata_{self.name}"

    @property
    def stream_name(self) -> str:
        """Its JetStream stream, before a namespace prefix."""
        return f"ES_{self.name.upper()}"

    @property
    def subject_root(self) -> str:
        return f"es.{self.name}"

    @property
    def event_types(self) -> tuple[type[Aggregate.Event], ...]:
        """The events its aggregates record (their nested event classes)."""
        return tuple(
            member
            for aggregate in self.aggregates
            for member in vars(aggregate).values()
            if isinstance(member, type) and issubclass(member, aggregate.Event)
        )

    @property
    def transcodings(self) -> tuple[Transcoding, ...]:
        """The value types its events hold beyond JSON's, as its application registers them."""
        return self.application.transcodings


class Registry:
    """The declared contexts, in order, by name."""

    def __init__(self, *contexts: BoundedContext) -> None:
        names = [context.name for context in contexts]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"contexts declared twice: {', '.join(duplicates)}")
        self._contexts: Mapping[str, BoundedContext] = {c.name: c for c in contexts}

    def with_(self, *extra: BoundedContext) -> "Registry":
        """A new registry: these contexts and the extra ones."""
        return Registry(*self, *extra)

    def only(self, *names: str) -> "Registry":
        """A new registry of the named contexts (a process serving some of them)."""
        return Registry(*(self[name] for name in names))

    def __iter__(self) -> Iterator[BoundedContext]:
        return iter(self._contexts.values())

    def __len__(self) -> int:
        return len(self._contexts)

    def __contains__(self, name: object) -> bool:
        return name in self._contexts

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._contexts)

    def __getitem__(self, name: str) -> BoundedContext:
        try:
            return self._contexts[name]
        except KeyError:
            raise UnknownContext(name, self.names) from None


class UnknownContext(KeyError):
    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(name)
        self.message = f"unknown context {name!r}; use {' or '.join(known)}"

    def __str__(self) -> str:
        return self.message
