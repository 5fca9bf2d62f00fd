"""Fresh aggregates for the domain unit tests: created, with their first event already
collected, so a test sees only the events its own commands append."""

from uuid import uuid4

from domain.orders.order import Order
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
