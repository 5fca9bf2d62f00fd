"""Switching a SQLite database to write-ahead logging, when other connections may be busy.

Switching to WAL takes an exclusive lock, and SQLite answers "database is locked" at once rather
than calling the busy handler when another connection holds a lock (the busy timeout does not
apply). Processes opening one database together (replicas starting at once) would then fail at
random, so the switch is retried until the busy timeout has passed. The mode is kept in the
file: once any connection has switched it, the others find it switched.
"""

import sqlite3
import time

RETRY_SECONDS = 0.01


def use_wal(connection: sqlite3.Connection, busy_timeout: float) -> None:
    """Put the connection's database in WAL mode; raises sqlite3.OperationalError if it stays
    locked for `busy_timeout` seconds."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(RETRY_SECONDS)
        else:
            return
