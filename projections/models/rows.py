"""Small helpers shared by the SQL projections."""

from collections.abc import Sequence

from readmodels.sql import Row, Tx


class MissingRow(LookupError):
    """An event refers to a row its projection never wrote."""


def change_one(tx: Tx, statement: str, params: Sequence[object], what: str) -> None:
    """Run a statement that must change exactly one row (checked when a pipelined
    transaction is flushed)."""
    tx.expect(statement, params, 1, lambda: MissingRow(f"no {what}"))


def fetch_one(tx: Tx, statement: str, params: Sequence[object], what: str) -> Row:
    row = tx.query_one(statement, params)
    if row is None:
        raise MissingRow(f"no {what}")
    return row
