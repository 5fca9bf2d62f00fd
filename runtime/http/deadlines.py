"""Deadline-bound thread hops: blocking store calls that answer in time or surface as a 503."""

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class ServiceUnavailable(Exception):
    """A store is unreachable or did not answer in time: 503 with Retry-After."""


class Runner:
    """Runs blocking store calls on a bounded thread pool under a deadline.

    A call that overruns the deadline, or raises one of `unavailable_errors`, surfaces as
    `ServiceUnavailable`. The abandoned thread finishes on its own; a call still waiting for a
    thread when its deadline passes never runs. A plain executor hop costs a third of anyio's
    `to_thread` with a capacity limiter and a cancel scope, and every command takes one.
    """

    def __init__(
        self,
        threads: int,
        timeout: float,
        unavailable_errors: tuple[type[Exception], ...] = (),
    ) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="store-call")
        self._timeout = timeout
        self._unavailable_errors = unavailable_errors

    async def run(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        in_context = functools.partial(contextvars.copy_context().run, call)  # correlation ids
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._executor, in_context), self._timeout
            )
        except TimeoutError:
            raise ServiceUnavailable(f"no answer within {self._timeout:g} s") from None
        except self._unavailable_errors as error:
            raise ServiceUnavailable(str(error) or type(error).__name__) from error

    def close(self) -> None:
        """Stop taking calls; the threads end once their calls have."""
        self._executor.shutdown(wait=False, cancel_futures=True)
