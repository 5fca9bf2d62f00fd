"""The circuit breaker and the retry policy of runtime/resilience.py, without any network."""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry

from runtime.resilience import (
    BreakerMetrics,
    BreakerOpen,
    BreakerState,
    CircuitBreaker,
    DownstreamProtocolError,
    DownstreamUnavailable,
    RetryPolicy,
    breaker_metrics,
)
from tests.support.breaker_flow import state_of

RECOVERY = 0.05


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def breaker(registry: CollectorRegistry) -> CircuitBreaker:
    return CircuitBreaker(
        "provider",
        failure_threshold=3,
        recovery_seconds=RECOVERY,
        metrics=breaker_metrics(registry),
    )


def fail() -> None:
    raise DownstreamUnavailable("down")


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        with pytest.raises(DownstreamUnavailable):
            breaker.call(fail)
    assert breaker.state is BreakerState.OPEN


def gauge(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("strata_breaker_state", {"downstream": "provider"})


def transitions(registry: CollectorRegistry, to: str) -> float:
    labels = {"downstream": "provider", "to": to}
    return registry.get_sample_value("strata_breaker_transitions_total", labels) or 0.0


def test_failures_in_a_row_open_it_and_then_calls_fail_without_being_made(
    breaker: CircuitBreaker, registry: CollectorRegistry
) -> None:
    assert gauge(registry) == 0
    trip(breaker)
    made = []
    with pytest.raises(BreakerOpen):
        breaker.call(lambda: made.append(1))
    assert made == []
    assert gauge(registry) == 2
    assert transitions(registry, "open") == 1


def test_a_success_resets_the_count_and_other_errors_are_answers(
    breaker: CircuitBreaker,
) -> None:
    for _ in range(5):
        for _ in range(2):
            with pytest.raises(DownstreamUnavailable):
                breaker.call(fail)
        assert breaker.call(lambda: "ok") == "ok"
    for _ in range(5):
        with pytest.raises(DownstreamProtocolError):
            breaker.call(raising(DownstreamProtocolError("400")))
    assert breaker.state is BreakerState.CLOSED


def raising(error: Exception) -> Callable[[], None]:
    def operation() -> None:
        raise error

    return operation


def test_after_the_recovery_time_one_probe_goes_through_and_its_success_closes_it(
    breaker: CircuitBreaker, registry: CollectorRegistry
) -> None:
    trip(breaker)
    time.sleep(RECOVERY * 2)
    probing, release = threading.Event(), threading.Event()
    ran = []

    def slow_probe() -> str:
        ran.append(threading.get_ident())
        probing.set()
        release.wait(5)
        return "ok"

    def concurrent_call() -> str:
        probing.wait(5)
        try:
            return breaker.call(slow_probe)
        except BreakerOpen:
            return "failed fast"

    with ThreadPoolExecutor(9) as pool:
        probe = pool.submit(breaker.call, slow_probe)
        others = [pool.submit(concurrent_call) for _ in range(8)]
        answers = [other.result(5) for other in others]
        assert breaker.state is BreakerState.HALF_OPEN
        assert gauge(registry) == 1
        release.set()
        assert probe.result(5) == "ok"
    assert answers == ["failed fast"] * 8
    assert len(ran) == 1
    assert state_of(breaker) is BreakerState.CLOSED
    assert gauge(registry) == 0
    assert [transitions(registry, to) for to in ("open", "half_open", "closed")] == [1, 1, 1]


def test_a_failed_probe_opens_it_again_for_another_recovery_time(
    breaker: CircuitBreaker, registry: CollectorRegistry
) -> None:
    trip(breaker)
    time.sleep(RECOVERY * 2)
    with pytest.raises(DownstreamUnavailable):
        breaker.call(fail)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(BreakerOpen):
        breaker.call(lambda: None)
    time.sleep(RECOVERY * 2)
    breaker.call(lambda: None)
    assert state_of(breaker) is BreakerState.CLOSED
    assert transitions(registry, "open") == 2


def test_a_call_admitted_before_it_opened_does_not_decide_the_half_open_state(
    breaker: CircuitBreaker,
) -> None:
    straggler_in, straggler_out = threading.Event(), threading.Event()

    def straggler() -> None:
        straggler_in.set()
        straggler_out.wait(5)

    with ThreadPoolExecutor(1) as pool:
        late = pool.submit(breaker.call, straggler)
        straggler_in.wait(5)
        trip(breaker)
        time.sleep(RECOVERY * 2)

        def failing_probe() -> None:
            straggler_out.set()
            late.result(5)  # the straggler ends well while the probe is in flight
            assert breaker.state is BreakerState.HALF_OPEN
            raise DownstreamUnavailable("probe failed")

        with pytest.raises(DownstreamUnavailable, match="probe failed"):
            breaker.call(failing_probe)
    assert breaker.state is BreakerState.OPEN  # the probe decided, not the straggler


def test_each_transition_is_logged(
    breaker: CircuitBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="strata.resilience")
    trip(breaker)
    time.sleep(RECOVERY * 2)
    breaker.call(lambda: None)
    lines = [(r.message, getattr(r, "breaker_state", None)) for r in caplog.records]
    assert lines == [
        ("circuit breaker of provider is now open", "open"),
        ("circuit breaker of provider is now half-open", "half_open"),
        ("circuit breaker of provider is now closed", "closed"),
    ]


def test_the_async_call_goes_through_the_same_breaker(breaker: CircuitBreaker) -> None:
    async def down() -> None:
        raise DownstreamUnavailable("down")

    async def calls() -> None:
        for _ in range(3):
            with pytest.raises(DownstreamUnavailable):
                await breaker.call_async(down)
        with pytest.raises(BreakerOpen):
            await breaker.call_async(down)

    asyncio.run(calls())


def test_the_metrics_of_a_registry_are_made_once(registry: CollectorRegistry) -> None:
    assert breaker_metrics(registry) is breaker_metrics(registry)
    assert isinstance(breaker_metrics(), BreakerMetrics)


def test_retries_transient_failures_up_to_the_attempts_then_raises_the_last() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise DownstreamUnavailable(f"attempt {len(calls)}")
        return "done"

    policy = RetryPolicy(attempts=3, first_wait=0.001, max_wait=0.002)
    assert policy.call(flaky) == "done"
    calls.clear()
    with pytest.raises(DownstreamUnavailable, match="attempt 2"):
        RetryPolicy(attempts=2, first_wait=0.001, max_wait=0.002).call(flaky)
    assert len(calls) == 2


@pytest.mark.parametrize("error", [BreakerOpen("open"), DownstreamProtocolError("409")])
def test_an_open_breaker_or_a_refusal_is_not_retried(error: Exception) -> None:
    calls: list[int] = []

    def operation() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        RetryPolicy(attempts=5, first_wait=0.001).call(operation)
    assert calls == [1]


def test_failing_fast_again_and_again_keeps_no_growing_traceback(breaker: CircuitBreaker) -> None:
    """purgatory raises its one `OpenedState` instance on every call, and each raise would add
    frames to its traceback: a leak in a long outage unless the breaker drops them."""
    trip(breaker)
    for _ in range(100):
        with pytest.raises(BreakerOpen) as raised:
            breaker.call(lambda: None)
    opened = raised.value.__context__
    assert opened is not None
    assert opened.__traceback__ is None


def test_a_cancelled_probe_decides_nothing_and_the_next_call_probes(
    breaker: CircuitBreaker,
) -> None:
    trip(breaker)
    time.sleep(RECOVERY * 2)

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(breaker.call_async(cancelled))
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(DownstreamUnavailable, match="down"):
        breaker.call(fail)  # the next call was let through as the probe
    assert state_of(breaker) is BreakerState.OPEN
