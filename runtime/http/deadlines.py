"""Deadline-bound thread hops: blocking store calls that answer in time or surface as a 503."""

from collections.abc import Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


class ServiceUnavailable(Exception):
    """A store is unreachable or did not answer in time: 503 with Retry-After."""


class Runner:
    """Runs blocking store calls on a bounded thread pool under a deadline.

    A call that overruns the deadline, or raises one of `unavailable_errors`, surfaces as
    `ServiceUnavailable`. The abandoned thread finishes on its own.
    """

    def __init__(
        self,
        threads: int,
        timeout: float,
        unavailable_errors: tuple[type[Exception], ...] = (),
    ) -> None:
        self._limiter = anyio.CapacityLimiter(threads)
        self._timeout = timeout
        self._unavailable_errors = unavailable_errors

    async def run(self, call: Callable[[], T]) -> T:
        try:
            with anyio.fail_after(self._timeout):
                return await anyio.to_thread.run_sync(
                    call, limiter=self._limiter, abandon_on_cancel=True
                )
        except TimeoutError:
            raise ServiceUnavailable(f"no answer within {self._timeout:g} s") from None
        except self._unavailable_errors as error:
            raise ServiceUnavailable(str(error) or type(error).__name__) from error
