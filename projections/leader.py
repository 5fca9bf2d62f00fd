"""At most one projector consumes at a time: a PostgreSQL advisory lock on its own connection.

Each projector start recreates the durable consumers from its checkpoints; two processes doing
so on the same projections would split the deliveries between them, and the one committing
later positions first would make the other's batch look like duplicates. So a second projector
is a hot standby: it waits for the lock and takes over when the holder's session ends (a crash
ends it at once; keepalives end it within seconds after a network split). A holder whose session
ends (a database restart ends every session) stops consuming and competes for the lock again.
"""

import psycopg
from psycopg.conninfo import make_conninfo


class LeaderLock:
    def __init__(self, database_url: str, name: str) -> None:
        self.name = name
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._conninfo = make_conninfo(
            database_url,
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
        )
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True while this process holds it.

        Raises psycopg.Error if the database cannot be reached; the next call reconnects."""
        if self.held:
            return True
        try:
            if self._conn is None:
                self._conn = psycopg.connect(self._conninfo, autocommit=True)
                # The server, too, must notice a vanished holder, so the lock is not held
                # forever.
                self._conn.execute("SET tcp_keepalives_idle = 5")
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", [self.name]
            ).fetchone()
        except psycopg.Error:
            self.release()
            raise
        self.held = bool(row and row[0])
        return self.held

    def still_held(self) -> bool:
        """False once the lock's session is gone: stop consuming, another may have taken over."""
        if not self.held or self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            self.held = False
        return self.held

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # ending the session releases the lock
        self._conn = None
        self.held = False
