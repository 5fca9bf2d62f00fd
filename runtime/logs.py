"""Structured JSON logs; lines emitted while an event is applied carry its correlation id."""

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# A record's own attributes; every other attribute is an `extra` and becomes a field of its own.
# `color_message` is uvicorn's uncoloured copy of the message; `taskName` is Python 3.12's.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}


def set_correlation_id(correlation_id: str | None) -> None:
    """Tag the rest of the current task's log lines (one request is one task)."""
    _correlation_id.set(correlation_id)


@contextmanager
def correlation(correlation_id: str | None) -> Iterator[None]:
    """Tag the log lines emitted inside the block with the correlation id."""
    token = _correlation_id.set(correlation_id)
    try:
        yield
    finally:
        _correlation_id.reset(token)


class JsonFormatter(logging.Formatter):
    """The one log format of every process (fields in README.md, "Operability").

    One JSON object per line: `time` (ISO 8601 UTC), `level`, `logger`, `message`,
    `correlation_id` when one is known, every `extra` of the record under its own name, and
    `exception` (the traceback) when an exception is logged.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        correlation_id = _correlation_id.get()
        if correlation_id is not None:
            line["correlation_id"] = correlation_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class WithoutQuery(logging.Filter):
    """Request lines written without the query string: a query may hold what must not be
    written down (a token, a secret), and the gateway's access log leaves it out too
    (docs/gateway.md). `position` is where the path or URL is among the record's arguments:
    uvicorn's access lines (`client - "GET /path?query HTTP/1.1" 200`) and httpx's request
    lines (`HTTP Request: GET http://…/path?query "HTTP/1.1 200 OK"`) both have five."""

    def __init__(self, position: int) -> None:
        super().__init__()
        self.position = position

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == REQUEST_LINE_ARGUMENTS:
            at = self.position
            record.args = (*args[:at], str(args[at]).partition("?")[0], *args[at + 1 :])
        return True


REQUEST_LINE_ARGUMENTS = 5
WITHOUT_QUERY = {"uvicorn.access": 2, "httpx": 1}
"""The loggers of request lines, and where the path or URL is among a line's arguments."""


def configure(level: str) -> None:
    """Send every logger (uvicorn's too) to stderr as JSON lines; request lines (uvicorn's
    access lines, httpx's) without the query string."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "nats"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for name, position in WITHOUT_QUERY.items():
        logger = logging.getLogger(name)
        if not any(isinstance(kept, WithoutQuery) for kept in logger.filters):
            logger.addFilter(WithoutQuery(position))
