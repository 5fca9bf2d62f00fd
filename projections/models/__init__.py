"""The projection code of the read models of docs/read-models.md, version 1.

Which projections run is not listed here: each context's declaration names the projections it
owns (`contexts/users.py`, `contexts/orders.py`), and `all_projections` asks the registry.
"""

from typing import TYPE_CHECKING

from projections.model import Projection
from projections.models.daily_sales import DailySales
from projections.models.orders import Orders
from projections.models.top_spenders import TopSpenders
from projections.models.user_profiles import UserProfiles
from projections.models.user_stats import UserStats
from projections.models.users_directory import UsersDirectory

if TYPE_CHECKING:
    from contexts.registry import Registry

__all__ = [
    "DailySales",
    "Orders",
    "TopSpenders",
    "UserProfiles",
    "UserStats",
    "UsersDirectory",
    "all_projections",
]


def all_projections(contexts: "Registry | None" = None) -> list[Projection]:
    """The projections `contexts` own (by default the registered contexts'), in registry order."""
    if contexts is None:
        from contexts.registered import REGISTRY  # noqa: PLC0415 - it imports these modules

        contexts = REGISTRY
    return contexts.projections()
