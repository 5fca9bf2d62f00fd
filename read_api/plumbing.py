"""Blocking read-store calls run on a bounded thread pool under a deadline."""

from collections.abc import Callable
from typing import TypeVar

import anyio

from read_api.problems import STORE_ERRORS, ServiceUnavailable

T = TypeVar("T")


class Runner:
    """Runs blocking store calls on a bounded thread pool under a deadline.

    A store that is unreachable, too slow or not created yet surfaces as `ServiceUnavailable`.
    """

    def __init__(self, threads: int, timeout: float) -> None:
        self._limiter = anyio.CapacityLimiter(threads)
        self._timeout = timeout

    async def run(self, call: Callable[[], T]) -> T:
        try:
            with anyio.fail_after(self._timeout):
                return await anyio.to_thread.run_sync(
                    call, limiter=self._limiter, abandon_on_cancel=True
                )
        except TimeoutError:
            raise ServiceUnavailable(f"no answer within {self._timeout:g} s") from None
        except STORE_ERRORS as error:
            raise ServiceUnavailable(str(error) or type(error).__name__) from error
