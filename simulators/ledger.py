"""A simulator's ledger, kept as a provider keeps its books: in a SQLite file.

Each operation runs in one transaction with its idempotency record (the key, the request and the
answer), and the answer is sent only once both are committed: a simulator killed after a 2xx
still knows the operation, and the key retried gets the same answer. The records the operations
make (authorizations, bookings) are JSON documents by reference. `:memory:` keeps nothing, for
a test that wants no file.
"""

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runtime.http.problem_types import IDEMPOTENCY_KEY_REUSED, ProblemType
from runtime.sqlite_wal import use_wal

Json = dict[str, Any]
IN_MEMORY = ":memory:"
BUSY_TIMEOUT_SECONDS = 10.0
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS operations (seq INTEGER PRIMARY KEY,"
    " key TEXT NOT NULL UNIQUE, request TEXT NOT NULL, answer TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS records (reference TEXT PRIMARY KEY, record TEXT NOT NULL)",
)


class SimulatorError(Exception):
    """An operation refused by the simulator's rules: answered as a problem, not recorded."""

    def __init__(self, kind: ProblemType, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status = status


class LedgerUnusable(Exception):
    """The ledger's file cannot be opened or made (its message says why)."""


class Ledger:
    """What a simulator recorded: every operation once per key, and the records the operations
    made. The file is opened at first use, not before; the caller serialises the calls."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def once(self, key: str, request: Json, perform: Callable[[], Json]) -> Json:
        """The answer of `perform`, run only the first time `key` comes with `request`; what
        `perform` keeps is committed with the key, or nothing is if it raises."""
        with self._transaction() as db:
            seen = db.execute(
                "SELECT request, answer FROM operations WHERE key = ?", (key,)
            ).fetchone()
            if seen is not None:
                first, answer = json.loads(seen[0]), json.loads(seen[1])
                if first != request:
                    raise SimulatorError(
                        IDEMPOTENCY_KEY_REUSED,
                        f"Idempotency-Key {key!r} was first used with another request: {first}",
                    )
                return dict(answer)
            answer = perform()
            db.execute(
                "INSERT INTO operations (key, request, answer) VALUES (?, ?, ?)",
                (key, json.dumps(request), json.dumps(answer)),
            )
            return answer

    def find(self, reference: str) -> Json | None:
        """The record of `reference`, if an operation made one."""
        row = (
            self._open()
            .execute("SELECT record FROM records WHERE reference = ?", (reference,))
            .fetchone()
        )
        return None if row is None else dict(json.loads(row[0]))

    def keep(self, reference: str, record: Json) -> None:
        """Write the record of `reference` (within the operation's transaction)."""
        self._open().execute(
            "INSERT OR REPLACE INTO records (reference, record) VALUES (?, ?)",
            (reference, json.dumps(record)),
        )

    def records(self) -> dict[str, Json]:
        rows = self._open().execute("SELECT reference, record FROM records ORDER BY rowid")
        return {reference: json.loads(record) for reference, record in rows}

    def summary(self) -> Json:
        """`GET /control/ledger`: a simulator adds its own records to these."""
        rows = self._open().execute("SELECT key, request, answer FROM operations ORDER BY seq")
        operations = [
            {"key": key, **json.loads(request), **json.loads(answer)}
            for key, request, answer in rows
        ]
        return {"operations": operations}

    def forget(self) -> None:
        """Forget every operation and record."""
        with self._transaction() as db:
            db.execute("DELETE FROM operations")
            db.execute("DELETE FROM records")

    def check(self) -> None:
        """Open the file (made if missing) and close it again: a path that cannot hold a ledger
        fails here, where a simulator starts, not at its first operation."""
        try:
            self._open()
        except (sqlite3.Error, OSError) as error:
            raise LedgerUnusable(f"the ledger {self.path} cannot be opened: {error}") from None
        finally:
            self.close()

    def close(self) -> None:
        """Close the file (its WAL folded back in); a later call opens it again."""
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._open()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = _connect(self.path)
        return self._db


def _connect(path: Path | str) -> sqlite3.Connection:
    """The ledger's connection, its tables made. WAL with `synchronous` left FULL, as in the
    event stores: a commit survives a power cut too, not only a killed process."""
    if str(path) != IN_MEMORY:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
    )
    if str(path) != IN_MEMORY:
        use_wal(db, BUSY_TIMEOUT_SECONDS)
    for statement in SCHEMA:
        db.execute(statement)
    return db
