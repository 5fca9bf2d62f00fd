"""How far the read models behind an endpoint have got, per context: the `X-Read-Position`
header. The read models and their checkpoints are `readmodels`' (catalog, checkpoints)."""

from collections.abc import Iterable, Sequence

from readmodels.catalog import ReadModel
from readmodels.checkpoints import Positions


def context_positions(
    positions: Positions, models: Iterable[ReadModel], contexts: Sequence[str]
) -> dict[str, int]:
    """Per context (in the order of `contexts`, the registry's), the position every given model
    has reached (the lowest checkpoint)."""
    reached: dict[str, int] = {}
    for model in models:
        for context in model.contexts:
            position = positions.get((model.name, context), 0)
            reached[context] = min(reached.get(context, position), position)
    return {context: reached[context] for context in contexts if context in reached}


def position_header(
    positions: Positions, models: Iterable[ReadModel], contexts: Sequence[str]
) -> str:
    """`users:120,orders:98`: the value of the X-Read-Position header."""
    reached = context_positions(positions, models, contexts)
    return ",".join(f"{context}:{position}" for context, position in reached.items())
