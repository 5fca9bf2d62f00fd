"""Connection pools that recover at once when PostgreSQL comes back.

**Dropped connections.** A PostgreSQL restart closes every connection. Each idle one in a pool
still looks open, and the command that draws it fails (a 503): one failed command per pooled
connection, with `/readyz` failing until they have all been drawn. A check on every checkout
finds them first, but the pool's own check is a round trip, too dear on the command path. A
connection the server closed has something to say, though: the server's farewell and the end of
the stream are waiting on its socket, where an idle connection in good order has nothing. So
the check here is one poll of the socket, and the round trip only when it is readable, which
also keeps a connection that was only sent a notice.

**Reconnecting.** While the server is down, a pool tries each lost connection again with pauses
that double (1, 2, 4, 8 s...): after an outage of 20 s the next try may come 10 s after the
server is back, and requests fail meanwhile. Here a pool gives a connection up after
`RECONNECT_SECONDS` of tries instead; the next request that finds no connection has the pool
try at once.
"""

import select
from functools import partial
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

RECONNECT_SECONDS = 2.0
"""How long a pool tries to bring one lost connection back before it gives it up (the pool's
`reconnect_timeout`)."""


def recover_promptly(pool: ConnectionPool[Any]) -> None:
    """Have `pool`, built by someone else, check each connection it hands out for a drop and
    give up lost ones after `RECONNECT_SECONDS`, as above."""
    # psycopg_pool takes its `check` only when built, and the library builds this pool itself.
    pool._check = partial(_check_for_drop, pool)
    pool.reconnect_timeout = RECONNECT_SECONDS


def recovering_pool(conninfo: str, **options: Any) -> ConnectionPool[Any]:
    """A pool of `options` that recovers promptly, as above."""
    pool: ConnectionPool[Any] | None = None

    def check(conn: psycopg.Connection[Any]) -> None:
        assert pool is not None  # a connection is checked only once the pool exists
        _check_for_drop(pool, conn)

    pool = ConnectionPool(conninfo, check=check, reconnect_timeout=RECONNECT_SECONDS, **options)
    return pool


def _check_for_drop(pool: ConnectionPool[Any], conn: psycopg.Connection[Any]) -> None:
    """A `check` for `pool`, as described above. A dropped connection makes the pool check all
    its idle ones at once (the server dropped them too), so that the requests meanwhile wait
    for new connections instead of drawing dead ones: only the request that found the first
    waits, for the pool's short pause before it draws again."""
    if not _has_data_waiting(conn):
        return
    try:
        ConnectionPool.check_connection(conn)
    except psycopg.Error:
        pool.check()
        raise


def _has_data_waiting(conn: psycopg.Connection[Any]) -> bool:
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))
