"""The errors of an event store, or NATS, that cannot be reached or answer now: outages, which
heal without anyone (a command meets them as a 503, a job is retried for as long as they last)."""

import nats.errors
from eventsourcing.persistence import InterfaceError, OperationalError
from nats.js.errors import ServiceUnavailableError
from psycopg_pool import PoolTimeout

STORE_OUTAGES: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)
"""The library's errors for a database it cannot reach or use, and the pool's for no
connection within its timeout (raised unwrapped by the library)."""

POOL_LOGGER = "psycopg.pool"
"""The logger of the connection pools: a line per failed connection, many per outage."""

NATS_OUTAGES: tuple[type[Exception], ...] = (
    OSError,  # refused, unreachable, or no answer in time (TimeoutError)
    nats.errors.NoServersError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError,  # JetStream not up yet, or a stream without a leader
    ServiceUnavailableError,
)
"""NATS errors of a server that cannot be reached, or whose JetStream cannot answer yet."""
