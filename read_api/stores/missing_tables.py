"""Read-model tables that are not there yet: in a read database no projector has prepared, or on
a streaming replica that has not replayed the projector's first statements. A read of the
checkpoints then finds none reached, so a read-your-writes read waits (and, if they never come,
answers `position-not-reached`) instead of failing as if the store were down."""

from collections.abc import Iterable

from readmodels.catalog import ReadModel
from readmodels.checkpoints import Positions
from readmodels.partition_checkpoints import read_all_positions
from readmodels.sql import SqlDatabase

CHECKPOINT_TABLES = ("rm_checkpoints", "rm_partition_checkpoints")


def checkpoint_positions(database: SqlDatabase, models: Iterable[ReadModel]) -> Positions:
    """`read_all_positions` in a read transaction of its own; none reached while the checkpoint
    tables do not exist."""
    try:
        with database.transaction(write=False) as tx:
            return read_all_positions(tx, models)
    except Exception as error:
        if database.dialect.missing_table(error, *CHECKPOINT_TABLES):
            return {}
        raise
