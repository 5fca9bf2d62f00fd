"""Opening what a process cannot serve without (its stores), waiting for it while it is down.

A process starts whether or not its stores answer. `Opening` tries once; on an outage it tries
again in the background, after pauses doubling from 0.5 s to 5 s, with one warning line per
failed try (no traceback; an error other than an outage logs one, and is tried again too).
Meanwhile `waiting_for` says what the process waits for, in words: its `/readyz` answers 503
with it, and `runtime.http.waiting.WaitingGate` every route that needs the stores. A first try
that fails with anything but an outage is raised: a bad setting still fails the start.

The tries run on a daemon thread of their own, so a process stopped while it waits stops at
once, without waiting for a try in flight; what such a try opens after the stop is closed.
What lives on the event loop (a NATS client) is opened there: `on_loop` and `closed_on`.
"""

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from typing import Any, Generic, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

T = TypeVar("T")
FIRST_PAUSE = 0.5
MAX_PAUSE = 5.0
"""Seconds between two tries: the first pause, doubled after each failed try up to this."""

log = logging.getLogger("strata.opening")


def _ignore(_: object) -> None:
    pass


class Opening(Generic[T]):
    """`open_` of `what` ("the users event store"), tried until it opens; `close` closes what
    it opened. `outages` are the errors a try meets while the store is unreachable; `quiet`
    names loggers kept to errors while waiting (a pool's line per failed connection)."""

    def __init__(
        self,
        what: str,
        open_: Callable[[], T],
        close: Callable[[T], None] = _ignore,
        *,
        outages: tuple[type[Exception], ...],
        quiet: Sequence[str] = (),
    ) -> None:
        self.what = what
        self._open = open_
        self._close = close
        self._outages = outages
        self._quiet = quiet
        self.waiting_for: str | None = f"{what} is not open yet"
        """What the process waits for, in words; None once it is open."""

    async def open(self) -> T:
        """What `open_` opens, at the first try or a later one. Cancelled, it stops trying."""
        try:
            opened = await asyncio.to_thread(self._quietly_open)
        except self._outages as outage:
            self._failed(outage, FIRST_PAUSE)
            opened = await self._retried()
        self.waiting_for = None
        return opened

    async def open_unless(self, stop: asyncio.Event) -> T | None:
        """What `open` opens, or None if `stop` is set first (the tries then stop)."""
        opening = asyncio.create_task(self.open())
        if not await finished_before(opening, stop):
            return None
        return opening.result()

    @asynccontextmanager
    async def serving(
        self, serve: Callable[[T], AbstractAsyncContextManager[None]]
    ) -> AsyncIterator[None]:
        """Run `serve(opened)` for the block, and close what was opened after it. If the first
        try opens, `serve` is entered before the block starts; else the block starts at once,
        waiting, and `serve` is entered in the background once a later try opens."""
        try:
            opened = await asyncio.to_thread(self._quietly_open)
        except self._outages as outage:
            self._failed(outage, FIRST_PAUSE)
            served = self._served_later(serve)
        else:
            served = self._served(opened, serve)
        async with served:
            yield

    @asynccontextmanager
    async def _served(
        self, opened: T, serve: Callable[[T], AbstractAsyncContextManager[None]]
    ) -> AsyncIterator[None]:
        try:
            async with serve(opened):
                self.waiting_for = None
                yield
        finally:
            self.waiting_for = f"{self.what} is closed"
            self._close(opened)

    @asynccontextmanager
    async def _served_later(
        self, serve: Callable[[T], AbstractAsyncContextManager[None]]
    ) -> AsyncIterator[None]:
        ended = asyncio.Event()

        async def run() -> None:
            opened = await self._retried()
            try:
                async with self._served(opened, serve):
                    await ended.wait()
            except Exception as error:
                log.exception("%s opened, but serving it failed", self.what)
                self.waiting_for = f"{self.what} opened, but serving it failed: {error}"

        task = asyncio.create_task(run(), name=f"opening {self.what}")
        try:
            yield
        finally:
            ended.set()
            if self.waiting_for is not None:  # still trying: stop
                task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _retried(self) -> T:
        """Try again and again on a thread of its own until a try opens."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        stopping = threading.Event()
        retrying = threading.Thread(
            target=self._retry, args=(loop, answer, stopping), name="opening", daemon=True
        )
        retrying.start()
        try:
            return await answer
        finally:
            stopping.set()

    def _retry(
        self, loop: asyncio.AbstractEventLoop, answer: "asyncio.Future[T]", stop: threading.Event
    ) -> None:
        retrying = Retrying(
            sleep=_pauses(stop),
            stop=lambda _: stop.is_set(),
            wait=wait_exponential(multiplier=FIRST_PAUSE * 2, max=MAX_PAUSE),
            retry=retry_if_exception_type(Exception),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            with _kept_to_errors(self._quiet):
                if stop.wait(FIRST_PAUSE):
                    return
                opened = retrying(self._open)
        except Exception:  # noqa: BLE001 - stopped meanwhile; the failure was logged
            return
        with suppress(RuntimeError):  # the loop is closed: no one waits for it
            loop.call_soon_threadsafe(self._hand_over, answer, opened)
            return
        self._close(opened)

    def _hand_over(self, answer: "asyncio.Future[T]", opened: T) -> None:
        if answer.done():  # stopped while the try was in flight
            self._close(opened)
        else:
            answer.set_result(opened)

    def _before_sleep(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else MAX_PAUSE
        if error is not None:
            self._failed(error, pause)

    def _failed(self, error: BaseException, pause: float) -> None:
        reason = _first_line(error)
        if isinstance(error, self._outages):
            self.waiting_for = f"{self.what} is not reachable yet ({reason})"
            log.warning("%s is not reachable (%s); trying again in %g s", self.what, reason, pause)
        else:
            self.waiting_for = f"{self.what} failed to open ({reason})"
            log.error("opening %s failed; trying again in %g s", self.what, pause, exc_info=error)

    def _quietly_open(self) -> T:
        with _kept_to_errors(self._quiet):
            return self._open()


async def finished_before(task: "asyncio.Task[Any]", stop: asyncio.Event) -> bool:
    """Whether `task` (an `Opening.open`, say) finished before `stop` was set; if not, it is
    cancelled."""
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return True
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    return False


def on_loop(
    loop: asyncio.AbstractEventLoop, open_: Callable[[], Coroutine[Any, Any, T]]
) -> Callable[[], T]:
    """An `open_` for `Opening` of what lives on `loop` (an asyncio client): each try runs
    `open_()` on `loop`, and the thread that tries waits for it."""
    return lambda: asyncio.run_coroutine_threadsafe(open_(), loop).result()


def closed_on(
    loop: asyncio.AbstractEventLoop, close: Callable[[T], Coroutine[Any, Any, None]]
) -> Callable[[T], None]:
    """A `close` for `Opening` of what lives on `loop`: `close(opened)` runs there, unawaited."""

    def closing(opened: T) -> None:
        coroutine = close(opened)
        try:
            asyncio.run_coroutine_threadsafe(coroutine, loop)
        except RuntimeError:  # the loop is closed, and with it what lived on it
            coroutine.close()

    return closing


def _pauses(stop: threading.Event) -> Callable[[float], None]:
    """A pause that ends early when `stop` is set."""

    def pause(seconds: float) -> None:
        stop.wait(seconds)

    return pause


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


@contextmanager
def _kept_to_errors(names: Sequence[str]) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.level, logging.ERROR))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
