"""What the orders context knows of users: whether each one exists and is active.

Orders keeps its own replica of this, fed by the users context's published events; it never
asks users. The replica stores, per user, the state set by the latest of the events below (by
the user's version), so it is right whatever order and however often the events arrive.
"""

from collections.abc import Mapping
from typing import Any

USERS = "users"
"""The context orders follows."""

DEACTIVATION = ("UserProfile", "Deactivated")
"""The kind (aggregate type, event type) of the users' event that deactivates a user."""

_STATE_AFTER: Mapping[tuple[str, str], Mapping[str, Any]] = {
    ("UserProfile", "Registered"): {"active": True},
    DEACTIVATION: {"active": False},
    ("UserProfile", "Reactivated"): {"active": True},
}
USER_STATE_KINDS = frozenset(_STATE_AFTER)
"""The kinds of the users' events that set a user's replicated state."""


def user_state_after(
    aggregate_type: str, event_type: str, data: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """A user's whole replicated state after this users' event, or None if it changes none."""
    return _STATE_AFTER.get((aggregate_type, event_type))


def is_active(state: Mapping[str, Any]) -> bool:
    return bool(state["active"])


def is_deactivation(aggregate_type: str, event_type: str) -> bool:
    """Whether this users' event deactivates a user (whose open orders orders then cancels)."""
    return (aggregate_type, event_type) == DEACTIVATION
