"""The errors of a server that is down or cannot be reached (PostgreSQL, Redis, NATS): outages,
which heal by themselves. A consumer re-attaching after one logs a warning line, not the
traceback that a failure of the code deserves."""

import logging
from typing import Any

import nats.errors
import nats.js.errors
import psycopg
import redis.exceptions

OUTAGES: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # also the pool's PoolTimeout
    psycopg.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    OSError,  # also TimeoutError, and nats-py's
)


def log_reattaching(
    logger: logging.Logger, error: BaseException, what: str, pause: float, **extra: Any
) -> None:
    """Log that `what` failed with `error` and re-attaches after `pause` seconds."""
    if isinstance(error, OUTAGES):
        reason = str(error).strip().splitlines()
        because = f"{type(error).__name__}: {reason[0]}" if reason else type(error).__name__
        logger.warning("%s failed (%s); re-attaching in %g s", what, because, pause, extra=extra)
    else:
        logger.error("%s failed; re-attaching in %g s", what, pause, exc_info=error, extra=extra)
