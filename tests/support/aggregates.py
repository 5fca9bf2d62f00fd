"""Fresh aggregates for the domain unit tests: created, with their first event already
collected, so a test sees only the events its own commands append."""

from typing import cast
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.orders.order import Order
from domain.service import CommandService
from domain.users.profile import UserProfile


def new_profile(name: str = "Ada Lovelace", email: str = "ada@example.com") -> UserProfile:
    """A registered profile whose Registered event has already been collected."""
    profile = UserProfile.register(name, email)
    profile.collect_events()
    return profile


def new_order(currency: str = "EUR") -> Order:
    """A draft order of a new user whose Created event has already been collected."""
    order = Order.create(uuid4(), currency)
    order.collect_events()
    return order


def collected(aggregate: Aggregate) -> list[Aggregate.Event]:
    """`aggregate.collect_events()`, typed as the domain's events (the library types them by its
    `CanMutateAggregate` protocol; every aggregate here is an `Aggregate`, whose events are
    `Aggregate.Event`s)."""
    return cast("list[Aggregate.Event]", aggregate.collect_events())


def stored_events(service: CommandService, aggregate_id: UUID) -> list[Aggregate.Event]:
    """The stored events of an aggregate, typed as the domain's events (the library types them by
    its `DomainEventProtocol`)."""
    return cast("list[Aggregate.Event]", list(service.events.get(aggregate_id)))
