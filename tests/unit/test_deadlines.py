"""The thread hop of every store call: answers, errors, deadlines, bounds and context."""

import asyncio
import contextvars
import threading
import time

import pytest

from runtime.http.deadlines import Runner, ServiceUnavailable

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class StoreDown(Exception):
    pass


def test_answers_from_another_thread_with_the_callers_context() -> None:
    async def scenario() -> tuple[str, str]:
        request_id.set("r-1")
        return await Runner(2, 5).run(lambda: (threading.current_thread().name, request_id.get()))

    thread, seen = asyncio.run(scenario())
    assert thread.startswith("store-call") and seen == "r-1"


def test_errors_reach_the_caller_and_unavailable_ones_become_503s() -> None:
    def fail(error: Exception) -> None:
        raise error

    async def scenario() -> None:
        runner = Runner(2, 5, unavailable_errors=(StoreDown,))
        with pytest.raises(ValueError, match="bad"):
            await runner.run(lambda: fail(ValueError("bad")))
        with pytest.raises(ServiceUnavailable, match="refused"):
            await runner.run(lambda: fail(StoreDown("refused")))

    asyncio.run(scenario())


def test_an_overdue_call_is_a_503_and_a_queued_one_never_runs() -> None:
    release = threading.Event()
    ran: list[str] = []

    def slow() -> None:
        release.wait(5)
        ran.append("slow")

    async def scenario() -> None:
        runner = Runner(1, 0.2)
        started = time.monotonic()
        results = await asyncio.gather(
            runner.run(slow), runner.run(lambda: ran.append("queued")), return_exceptions=True
        )
        assert time.monotonic() - started < 2
        assert all(isinstance(result, ServiceUnavailable) for result in results), results
        release.set()
        assert await runner.run(lambda: "after") == "after"  # the thread is free again

    asyncio.run(scenario())
    assert ran == ["slow"]


def test_threads_grow_with_concurrent_calls_up_to_the_bound() -> None:
    barrier = threading.Barrier(3, timeout=5)
    names: set[str] = set()

    def meet() -> None:
        names.add(threading.current_thread().name)
        barrier.wait()

    def meet_alone() -> None:
        names.add(threading.current_thread().name)
        time.sleep(0.001)

    async def scenario() -> None:
        runner = Runner(3, 5)
        await asyncio.gather(*(runner.run(meet) for _ in range(3)))  # needs 3 threads at once
        await asyncio.gather(*(runner.run(meet_alone) for _ in range(20)))
        runner.close()

    asyncio.run(scenario())
    assert len(names) == 3


def test_a_closed_runner_takes_no_call() -> None:
    async def scenario() -> None:
        runner = Runner(1, 5)
        await runner.run(lambda: None)
        runner.close()
        with pytest.raises(RuntimeError, match="closed"):
            await runner.run(lambda: None)

    asyncio.run(scenario())
