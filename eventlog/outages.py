"""The errors of an event store that cannot be reached or answer now: outages, which heal
without anyone (a command meets them as a 503, a job is retried for as long as they last)."""

from eventsourcing.persistence import InterfaceError, OperationalError
from psycopg_pool import PoolTimeout

STORE_OUTAGES: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)
"""The library's errors for a database it cannot reach or use, and the pool's for no
connection within its timeout (raised unwrapped by the library)."""

POOL_LOGGER = "psycopg.pool"
"""The logger of the connection pools: a line per failed connection, many per outage."""
