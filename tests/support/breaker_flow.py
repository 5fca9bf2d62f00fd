"""The circuit breaker's part in the fulfilment, checked the same way in one process and on the
stack (issue 9): while the payment provider is down, the payments service's breaker opens, the
calls that reach the provider stay bounded however many orders keep retrying, each half-open
state lets exactly one probe through, and the breaker closes once the provider is back.

`BreakerWatch` reads the breaker from the service's /metrics and the provider's own count of the
requests it received, as one consistent snapshot (no probe in flight, no transition between)."""

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from runtime.resilience import BreakerState, CircuitBreaker
from tests.support.servers import wait_until

PROVIDER = "payment-provider"
TO = ("open", "half_open", "closed")
"""The `to` labels of `strata_breaker_transitions_total`: the state entered."""


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state now: a call, so a type checker keeps no earlier check of
    `breaker.state` across the calls through it in between."""
    return breaker.state


@dataclass(frozen=True)
class BreakerCounts:
    state: BreakerState
    opened: int
    half_opened: int
    closed: int
    requests: int
    """Requests the provider received."""


def _samples(text: str, downstream: str) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("to", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("downstream") == downstream
    }


class BreakerWatch:
    def __init__(
        self, metrics: Callable[[], str], requests: Callable[[], int], downstream: str = PROVIDER
    ) -> None:
        self._metrics, self._requests, self._downstream = metrics, requests, downstream

    def _breaker(self) -> tuple[BreakerState, int, int, int]:
        samples = _samples(self._metrics(), self._downstream)
        state = BreakerState(int(samples.get(("strata_breaker_state", ""), 0)))
        counts = [int(samples.get(("strata_breaker_transitions_total", to), 0)) for to in TO]
        return state, counts[0], counts[1], counts[2]

    def counts(self) -> BreakerCounts:
        """A snapshot taken while no probe is in flight (the breaker not half-open) and no
        transition happened around the reading of the provider's count."""
        snapshot: list[BreakerCounts] = []

        def consistent() -> bool:
            before = self._breaker()
            requests = self._requests()
            if before != self._breaker() or before[0] is BreakerState.HALF_OPEN:
                return False
            snapshot.append(BreakerCounts(*before, requests))
            return True

        wait_until(consistent, 30, "a reading of the breaker with no probe in flight")
        return snapshot[-1]

    def wait_for(self, condition: Callable[[BreakerCounts], bool], what: str) -> BreakerCounts:
        wait_until(lambda: condition(self.counts()), 60, what)
        return self.counts()


def check_outage_bounds_calls(
    watch: BreakerWatch, before: BreakerCounts, threshold: int, probes: int
) -> BreakerCounts:
    """With the provider down since just before `before` was read, and orders retrying their
    payments: the breaker opens after at most `threshold` failed requests (fewer if it was
    counting failures already; none if it was open); then, over `probes` more half-open
    states, exactly one request each reaches the provider. Returns the last reading. (Other
    payments may be in flight, such as jobs left by earlier tests in a shared store: every
    request they make while the provider is down is a failure too.)"""
    start = watch.wait_for(lambda c: c.state is BreakerState.OPEN, "the breaker opens")
    to_open = threshold if before.state is BreakerState.CLOSED else 0
    failed = start.requests - before.requests
    assert failed <= to_open + start.half_opened - before.half_opened, (
        "opened after `threshold` failures; since then, one probe per half-open state"
    )
    end = watch.wait_for(
        lambda c: c.half_opened >= start.half_opened + probes and c.state is BreakerState.OPEN,
        f"{probes} probes, each failing and opening the breaker again",
    )
    assert end.requests - start.requests == end.half_opened - start.half_opened, (
        "each half-open state let exactly one probe through, and nothing else reached the provider"
    )
    return end


def check_recovery_closes(watch: BreakerWatch, outage_end: BreakerCounts) -> None:
    """Once the provider is back, the next probe closes the breaker (the probes between
    `outage_end` and the provider's return failed and opened it again)."""
    closed = watch.wait_for(
        lambda c: c.state is BreakerState.CLOSED and c.closed > outage_end.closed,
        "a probe succeeds and closes the breaker",
    )
    probes = closed.half_opened - outage_end.half_opened
    assert closed.closed - outage_end.closed == 1
    assert probes == closed.opened - outage_end.opened + 1, "closed by one probe"
