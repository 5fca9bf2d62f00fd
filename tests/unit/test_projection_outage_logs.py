"""A consumer that re-attaches after an outage logs one warning line; after a failure of the
code, an error with its traceback."""

import logging

import psycopg_pool
import pytest
import redis.exceptions

from projections.outages import log_reattaching

LOGGER = logging.getLogger("strata.test.reattaching")


@pytest.mark.parametrize(
    "outage",
    [
        psycopg_pool.PoolTimeout("couldn't get a connection after 2.00 sec"),
        redis.exceptions.ConnectionError("Connection refused"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_an_outage_is_one_warning_line(caplog: pytest.LogCaptureFixture, outage: Exception) -> None:
    with caplog.at_level(logging.WARNING, LOGGER.name):
        log_reattaching(LOGGER, outage, "consumer c", 0.5, projection="p")
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage().startswith(f"consumer c failed ({type(outage).__name__}: ")
    assert record.getMessage().endswith("; re-attaching in 0.5 s")
    assert record.__dict__["projection"] == "p"


def test_a_failure_of_the_code_is_an_error_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    try:
        {"present": 1}["missing"]
    except KeyError as bug:
        with caplog.at_level(logging.WARNING, LOGGER.name):
            log_reattaching(LOGGER, bug, "feed f", 2.0)
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == "feed f failed; re-attaching in 2 s"
