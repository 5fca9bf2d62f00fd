"""The read models: each one's name, the contexts whose events it folds, its shape and tables.

A `ReadModel` names one version of a model (`at(version)`); version 1 of the models of
docs/read-models.md (the prose of the same contract) is declared here, and a context of its own
package may declare more. Which models exist is the registry's to say: each context declares the
projections it owns, each writing one model (`contexts.registry.Registry.read_models`), and
both projectors and the read API take that list. A checkpoint is kept per (model, version,
context), so a position token `<context>:<n>` concerns only the models that fold that context.
"""

from dataclasses import dataclass, replace
from typing import Literal

from readmodels.sql import Table
from readmodels.tables import (
    DAILY_SALES_ORDERS_TABLE,
    DAILY_SALES_TABLE,
    ORDER_LINES_TABLE,
    ORDERS_TABLE,
    USER_HOBBIES_TABLE,
    USERS_DIRECTORY_TABLE,
)
from readmodels.versions import table_names, versioned_table

Shape = Literal["documents", "tables"]
"""`documents`: hashes and sorted sets (Redis in the stack mode, the generic SQL document tables
embedded); `tables`: its own relational tables (the PostgreSQL read database, or SQLite)."""


@dataclass(frozen=True)
class ReadModel:
    name: str
    contexts: tuple[str, ...]
    shape: Shape
    tables: tuple[Table, ...] = ()
    """A relational model's tables, named as at version 1."""
    version: int = 1

    @property
    def label(self) -> str:
        return f"{self.name}:v{self.version}"

    def at(self, version: int) -> "ReadModel":
        """This model at another version (the same contract, other names)."""
        return self if version == self.version else replace(self, version=version)

    @property
    def versioned_tables(self) -> tuple[Table, ...]:
        """The tables of this version (`orders_v2`, …)."""
        return tuple(versioned_table(table, self.version) for table in self.tables)

    @property
    def table_renames(self) -> dict[str, str]:
        """Version-1 table name → this version's (empty at version 1)."""
        return table_names(self.tables, self.version)


USER_PROFILES = ReadModel("user_profiles", ("users",), "documents")
USER_STATS = ReadModel("user_stats", ("orders",), "documents")
TOP_SPENDERS = ReadModel("top_spenders", ("orders",), "documents")
USERS_DIRECTORY = ReadModel(
    "users_directory", ("users",), "tables", (USERS_DIRECTORY_TABLE, USER_HOBBIES_TABLE)
)
ORDERS = ReadModel("orders", ("orders",), "tables", (ORDERS_TABLE, ORDER_LINES_TABLE))
DAILY_SALES = ReadModel(
    "daily_sales", ("orders",), "tables", (DAILY_SALES_TABLE, DAILY_SALES_ORDERS_TABLE)
)
