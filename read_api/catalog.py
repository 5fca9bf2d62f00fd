"""The read models this API serves: each projection's name, version and the contexts it folds.

`docs/read-models.md` is the contract; the names, versions and contexts come from the
projections themselves (`projections.models`). A checkpoint is kept per
(projection, version, context), so a position token `<context>:<n>` concerns only the
projections that consume that context.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import projections.model
from projections import models
from runtime.settings import CONTEXTS

Positions = Mapping[tuple[str, str], int]
"""Checkpoints by (projection name, context); a missing entry means nothing applied yet (0)."""


@dataclass(frozen=True)
class Projection:
    name: str
    version: int
    contexts: tuple[str, ...]

    @property
    def redis_prefix(self) -> str:
        """`rm:{<proj>:v<k>}:` — the hash tag keeps one projection's keys in one cluster slot."""
        return f"rm:{{{self.name}:v{self.version}}}:"


def _of(model: type[projections.model.Projection]) -> Projection:
    return Projection(model.name, model.version, model.contexts)


USER_PROFILES = _of(models.UserProfiles)
USER_STATS = _of(models.UserStats)
TOP_SPENDERS = _of(models.TopSpenders)
USERS_DIRECTORY = _of(models.UsersDirectory)
ORDERS = _of(models.Orders)
DAILY_SALES = _of(models.DailySales)

KEY_VALUE_SHAPED = (USER_PROFILES, USER_STATS, TOP_SPENDERS)
"""Redis in the stack mode, SQLite tables of the same shape in the embedded mode."""
RELATIONAL = (USERS_DIRECTORY, ORDERS, DAILY_SALES)
"""The PostgreSQL read database in the stack mode, SQLite in the embedded mode."""
ALL = KEY_VALUE_SHAPED + RELATIONAL


def context_positions(positions: Positions, projections: Iterable[Projection]) -> dict[str, int]:
    """Per context, the position every given projection has reached (the lowest checkpoint)."""
    reached: dict[str, int] = {}
    for projection in projections:
        for context in projection.contexts:
            position = positions.get((projection.name, context), 0)
            reached[context] = min(reached.get(context, position), position)
    return {context: reached[context] for context in CONTEXTS if context in reached}


def position_header(positions: Positions, projections: Iterable[Projection]) -> str:
    """`users:120,orders:98`: the value of the X-Read-Position header."""
    reached = context_positions(positions, projections)
    return ",".join(f"{context}:{position}" for context, position in reached.items())
