"""Pooled connections the server has dropped, found before a store call draws one.

A PostgreSQL restart closes every connection. Each idle one in a pool still looks open, and the
command that draws it fails (a 503): one failed command per pooled connection, with `/readyz`
failing until they have all been drawn. A check on every checkout finds them first, but the
pool's own check is a round trip, too dear on the command path. A connection the server closed
has something to say, though: the server's farewell and the end of the stream are waiting on
its socket, where an idle connection in good order has nothing. So the check here is one poll of
the socket, and the round trip only when it is readable, which also keeps a connection that was
only sent a notice.
"""

import select
from functools import partial
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool


def watch_for_dropped_connections(pool: ConnectionPool[Any]) -> None:
    """Have `pool`, built by someone else, check each connection it hands out for a drop."""
    # psycopg_pool takes its `check` only when built, and the library builds this pool itself.
    pool._check = partial(check_for_drop, pool)


def check_for_drop(pool: ConnectionPool[Any], conn: psycopg.Connection[Any]) -> None:
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
