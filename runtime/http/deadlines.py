"""Deadline-bound thread hops: blocking store calls that answer in time or surface as a 503."""

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ServiceUnavailable(Exception):
    """A store is unreachable or did not answer in time: 503 with Retry-After."""


class _Overdue(Exception):
    """The call's deadline passed before it answered."""


@dataclass(slots=True)
class _Call(Generic[T]):
    loop: asyncio.AbstractEventLoop
    answer: "asyncio.Future[T]"
    call: Callable[[], T]
    context: contextvars.Context


class Runner:
    """Runs blocking store calls on a bounded pool of threads under a deadline.

    A call that overruns the deadline, or raises one of `unavailable_errors`, surfaces as
    `ServiceUnavailable`. The abandoned thread finishes on its own; a call still waiting for a
    thread when its deadline passes never runs.

    Every command takes one hop, so it is the leanest the interpreter offers: a queue the
    threads wait on, and the answer handed back with `call_soon_threadsafe`. An executor's
    `run_in_executor` costs about four times its CPU (two futures chained by callbacks, a
    condition per call, a semaphore per submit), and `wait_for` another task per call.
    """

    def __init__(
        self,
        threads: int,
        timeout: float,
        unavailable_errors: tuple[type[Exception], ...] = (),
    ) -> None:
        self._max_threads = threads
        self._timeout = timeout
        self._unavailable_errors = unavailable_errors
        self._calls: queue.SimpleQueue[_Call[Any] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        """Calls handed to the threads and not yet finished there: read and written on the
        event loop's thread only."""
        self._closed = False

    async def run(self, call: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError("the runner is closed")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        self._busy += 1
        if self._busy > len(self._threads) and len(self._threads) < self._max_threads:
            self._start_thread()  # every thread has a call: one more, up to the bound
        self._calls.put(_Call(loop, answer, call, contextvars.copy_context()))  # correlation ids
        deadline = loop.call_later(self._timeout, _expire, answer)
        try:
            return await answer
        except _Overdue:
            raise ServiceUnavailable(f"no answer within {self._timeout:g} s") from None
        except self._unavailable_errors as error:
            raise ServiceUnavailable(str(error) or type(error).__name__) from error
        finally:
            deadline.cancel()

    def close(self) -> None:
        """Stop taking calls, and drop those still waiting for a thread; the threads end once
        their calls have."""
        self._closed = True
        for _ in self._threads:
            self._calls.put(None)

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._serve, name=f"store-call_{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            if self._closed or item.answer.done():  # or overdue, or cancelled, while it waited
                _hand_back(item.loop, self._finished, item.answer, None, None)
                continue
            try:
                result = item.context.run(item.call)
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting request
                _hand_back(item.loop, self._finished, item.answer, None, error)
            else:
                _hand_back(item.loop, self._finished, item.answer, result, None)

    def _finished(
        self, answer: "asyncio.Future[Any]", result: Any, error: BaseException | None
    ) -> None:
        self._busy -= 1
        if answer.done():
            return
        if error is None:
            answer.set_result(result)
        else:
            answer.set_exception(error)


def _expire(answer: "asyncio.Future[Any]") -> None:
    if not answer.done():
        answer.set_exception(_Overdue())


def _hand_back(
    loop: asyncio.AbstractEventLoop,
    finished: Callable[..., None],
    answer: "asyncio.Future[Any]",
    result: Any,
    error: BaseException | None,
) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits the answer
        loop.call_soon_threadsafe(finished, answer, result, error)
