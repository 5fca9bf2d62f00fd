"""The declaration of a bounded context, and the registry that holds the declared ones.

Everything a process needs to know about a context follows from its declaration: the settings
variable of its event store (`STRATA_<NAME>_DATABASE_URL`), its SQLite file in the embedded mode
(`<name>.sqlite`), its JetStream stream (`ES_<NAME>`, subjects `es.<name>.>`), its application,
its aggregates and their events, the router of its command endpoints, the projections it owns
and the router of its read endpoints. A registry is immutable: `Registry.with_(extra)` is a new one
(how a test adds a context without touching the real one).
"""

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Transcoding
from fastapi import APIRouter

from domain.ports import Job
from domain.service import CommandService
from eventlog.reactions import Reaction
from eventlog.replicas import Replica
from projections.model import Projection
from readmodels.catalog import ReadModel
from runtime.auth.tokens import TokenSource
from runtime.live_settings import LiveSettings
from runtime.resilience import BreakerMetrics
from runtime.settings import CommonSettings, database_url_field

NAME = re.compile(r"^[a-z][a-z0-9]*$")
RESERVED_NAMES = frozenset({"read"})
"""`read` is the read-model database (`STRATA_READ_DATABASE_URL`), not a context."""


def sqlite_file(context: str) -> str:
    """A context's event store's file in the embedded mode's data directory."""
    return f"{context}.sqlite"


JobHandler = Callable[[Job], None]


@dataclass(frozen=True)
class WorkerEnvironment:
    """What a job handler may use in the process running it."""

    served: Mapping[str, CommandService]
    """Every application the process serves, by context name."""
    settings: CommonSettings
    breakers: BreakerMetrics
    """The breakers' metrics, on the registry of the process's /metrics."""
    live: LiveSettings
    """The settings that change while the process runs: a handler follows those it uses."""
    tokens: TokenSource
    """This process's service token, for its calls to other services."""


@dataclass(frozen=True)
class Worker:
    """A context's durable jobs of one kind, run by a job poller in each process serving it:
    `handler(application, environment)` builds the handler of one job."""

    kind: str
    handler: Callable[[CommandService, WorkerEnvironment], JobHandler]


@dataclass(frozen=True)
class BoundedContext:
    """One context, declared once.

    `replicas` are what it keeps of other contexts, fed by their events (it never asks them);
    `reactions`, the commands it runs when other contexts' events happen (choreography);
    `workers`, the kinds of durable jobs its commands leave for later, and their handlers.
    `projections` are the read models it owns: one may fold other contexts' events too (its
    read model's `contexts`), but it is declared by one context only. `read_router` holds its
    read endpoints (read API code, over those read models and others').
    """

    name: str
    application: type[CommandService]
    aggregates: tuple[type[Aggregate], ...]
    router: APIRouter
    replicas: tuple[Replica, ...] = ()
    reactions: tuple[Reaction, ...] = ()
    workers: tuple[Worker, ...] = ()
    projections: tuple[type[Projection], ...] = ()
    read_router: APIRouter | None = None

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
        followed = [r.upstream for r in self.replicas] + [r.upstream for r in self.reactions]
        if self.name in followed:
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
        _refuse_twice("contexts", [context.name for context in contexts])
        models = [kind.read_model.name for context in contexts for kind in context.projections]
        _refuse_twice("read models", models)
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

    def projections(self) -> list[Projection]:
        """A projection of each read model the contexts own, in registration order."""
        return [kind() for context in self for kind in context.projections]

    @property
    def read_models(self) -> tuple[ReadModel, ...]:
        """The read models the contexts own (at version 1), in registration order."""
        return tuple(kind.read_model for context in self for kind in context.projections)

    @property
    def read_routers(self) -> tuple[APIRouter, ...]:
        """The routers of the contexts' read endpoints, in registration order."""
        return tuple(c.read_router for c in self if c.read_router is not None)

    def __getitem__(self, name: str) -> BoundedContext:
        try:
            return self._contexts[name]
        except KeyError:
            raise UnknownContext(name, self.names) from None


def merged_router(*routers: APIRouter) -> APIRouter:
    """One router of the routes of several (a context's endpoints kept in several modules)."""
    merged = APIRouter()
    for router in routers:
        merged.include_router(router)
    return merged


def _refuse_twice(what: str, names: list[str]) -> None:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{what} declared twice: {', '.join(duplicates)}")


class UnknownContext(KeyError):
    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(name)
        self.message = f"unknown context {name!r}; use {' or '.join(known)}"

    def __str__(self) -> str:
        return self.message
