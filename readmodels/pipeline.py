"""Batches of statements in one PostgreSQL round trip or a few (psycopg pipeline mode).

A projector's batch runs many small statements; sent one by one, each costs a round trip. In
a pipelined transaction they go out without waiting for their results: `execute` returns at
once, a row count a statement must have is checked when the transaction is flushed (`expect`),
and only a query waits for what was sent before it. A failing statement in a pipeline aborts
the rest, and its error says nothing of the event it belongs to, so `run_batch` then runs the
batch again in a plain transaction, where the failing statement raises as it runs.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg import Pipeline

from readmodels.dialects import Dialect
from readmodels.sql import PostgresDatabase, Row, SqlDatabase, Tx


class PipelineFailed(Exception):
    """A statement of a pipelined transaction changed other rows than expected."""


class PipelinedTx(Tx):
    """A PostgreSQL transaction in pipeline mode (`execute` returns -1: the row count is not
    known yet; use `expect`)."""

    pipelined = True

    def __init__(self, dialect: Dialect, conn: psycopg.Connection[Row], pipeline: Pipeline) -> None:
        super().__init__(dialect, conn.cursor())
        self._conn = conn
        self._pipeline = pipeline
        self._expected: list[tuple[psycopg.Cursor[Row], int, Callable[[], Exception]]] = []

    def execute(self, statement: str, params: Sequence[object] = ()) -> int:
        self._conn.cursor().execute(self.dialect.sql(statement), params)
        return -1

    def expect(
        self,
        statement: str,
        params: Sequence[object],
        rows: int,
        failure: Callable[[], Exception],
    ) -> None:
        cursor = self._conn.cursor()
        cursor.execute(self.dialect.sql(statement), params)
        self._expected.append((cursor, rows, failure))

    def flush(self) -> None:
        """Wait for every statement sent; PipelineFailed if one changed other rows than
        expected (a statement that failed raises its own error)."""
        self._pipeline.sync()
        expected, self._expected = self._expected, []
        for cursor, rows, failure in expected:
            if cursor.rowcount != rows:
                raise PipelineFailed(str(failure()))


@contextmanager
def pipelined(db: SqlDatabase) -> Iterator[Tx]:
    """A write transaction, pipelined on PostgreSQL (a plain one on SQLite)."""
    if not isinstance(db, PostgresDatabase):
        with db.transaction() as tx:
            yield tx
        return
    with db.connection() as conn, conn.pipeline() as pipeline, conn.transaction():
        yield PipelinedTx(db.dialect, conn, pipeline)


def run_batch(db: SqlDatabase, body: Callable[[Tx], None]) -> None:
    """Run `body` in one pipelined write transaction, flushed before it commits; if a
    statement fails there, run it again in a plain transaction (see the module's doc)."""
    try:
        with pipelined(db) as tx:
            body(tx)
            tx.flush()
    except Exception as error:
        failed = isinstance(error, PipelineFailed) or (
            db.dialect.is_driver_error(error) and not db.dialect.is_infrastructure_error(error)
        )
        if not failed or not isinstance(db, PostgresDatabase):
            raise
        with db.transaction() as tx:
            body(tx)
