"""The read models of docs/read-models.md, version 1."""

from projections.model import OpsProjection, Projection, SqlProjection
from projections.models.daily_sales import DailySales
from projections.models.orders import Orders
from projections.models.top_spenders import TopSpenders
from projections.models.user_profiles import UserProfiles
from projections.models.user_stats import UserStats
from projections.models.users_directory import UsersDirectory

__all__ = [
    "DOCUMENT_PROJECTIONS",
    "SQL_PROJECTIONS",
    "DailySales",
    "Orders",
    "TopSpenders",
    "UserProfiles",
    "UserStats",
    "UsersDirectory",
    "all_projections",
]

DOCUMENT_PROJECTIONS: tuple[type[OpsProjection], ...] = (UserProfiles, UserStats, TopSpenders)
"""Redis in the stack mode; the generic SQL document tables in the embedded mode."""

SQL_PROJECTIONS: tuple[type[SqlProjection], ...] = (UsersDirectory, Orders, DailySales)
"""The PostgreSQL read database in the stack mode; SQLite in the embedded mode."""


def all_projections() -> list[Projection]:
    return [kind() for kind in (*DOCUMENT_PROJECTIONS, *SQL_PROJECTIONS)]
