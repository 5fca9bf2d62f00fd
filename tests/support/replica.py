"""A PostgreSQL streaming replica for the tests of reading from one: `pg_basebackup -R` of a
throwaway primary (`tests.support.servers.PostgresServer`), started as a hot standby on a port of
its own, with replay paused and resumed at will (`pg_wal_replay_pause()`).

`replicated_postgres()` makes a self-contained pair (a primary of its own and its replica);
`StreamingReplica(folder, primary)` replicates a primary already running, such as the e2e stack's.
Both run as the `postgres` user when the tests run as root, and are stopped and deleted after.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.servers import PostgresServer, require_server_binaries, wait_until

CATCH_UP_SECONDS = 30.0


class StreamingReplica(PostgresServer):
    """A hot standby of `primary` (which must be running): its data folder is a base backup
    taken with `-R`, so it starts streaming the primary's WAL at once."""

    def __init__(self, folder: Path, primary: PostgresServer) -> None:
        self.primary = primary
        super().__init__(folder)

    def _create(self) -> None:
        self._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres"),
            *("-D", str(self._data), "-R", "-X", "stream", "-c", "fast", "--no-sync"),
        )

    def _query(self, statement: str) -> object:
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(statement).fetchone()
        return None if row is None else row[0]

    def pause_replay(self) -> None:
        """Stop applying the WAL it receives (it keeps receiving it); wait until it has."""
        self._query("SELECT pg_wal_replay_pause()")
        wait_until(self._paused, CATCH_UP_SECONDS, "replay on the replica pauses")

    def _paused(self) -> bool:
        return self._query("SELECT pg_get_wal_replay_pause_state()") == "paused"

    def resume_replay(self) -> None:
        self._query("SELECT pg_wal_replay_resume()")

    def catch_up(self) -> None:
        """Return once the replica has replayed every WAL record the primary has written."""
        with psycopg.connect(self.primary.url(), autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        target = row[0]
        replayed = f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
        wait_until(lambda: self._query(replayed) is True, CATCH_UP_SECONDS, "the replica replays")


@dataclass(frozen=True)
class ReplicatedPostgres:
    primary: PostgresServer
    replica: StreamingReplica


@contextmanager
def replicated_postgres() -> Iterator[ReplicatedPostgres]:
    """A primary of its own and its streaming replica, on free ports; stopped and deleted at
    the end."""
    with _scratch_folder("primary") as folder:
        primary = PostgresServer(folder)
        try:
            primary.start()
            with streaming_replica(primary) as replica:
                yield ReplicatedPostgres(primary, replica)
        finally:
            primary.close()


@contextmanager
def streaming_replica(primary: PostgresServer) -> Iterator[StreamingReplica]:
    """A started streaming replica of the running `primary`; stopped and deleted at the end."""
    with _scratch_folder("replica") as folder:
        replica = StreamingReplica(folder, primary)
        try:
            replica.start()
            yield replica
        finally:
            replica.close()


@contextmanager
def _scratch_folder(name: str) -> Iterator[Path]:
    require_server_binaries()
    root = Path(tempfile.mkdtemp(prefix=f"strata-{name}-"))
    os.chmod(root, 0o755)  # the postgres user must reach its folder
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
