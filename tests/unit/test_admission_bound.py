"""The adaptive admission rule on a clock the test drives: a simulated process that serves a
fixed number of commands per second (first in, first out) under open-loop arrivals, or a fixed
population of closed-loop clients. No I/O, no sleeps."""

from collections import deque
from dataclasses import dataclass, field

import pytest

from runtime.http.admission import SMOOTHING, WINDOW_SECONDS, LatencyBound

TARGET = 0.030
CEILING = 40


@dataclass
class Served:
    """What a simulated run did: each admitted command's time in flight, and the refusals."""

    times_in_flight: list[tuple[float, float]] = field(default_factory=list)  # (admitted, took)
    refused: int = 0

    def took_after(self, start: float) -> list[float]:
        return [took for admitted, took in self.times_in_flight if admitted >= start]


def open_loop(
    rule: LatencyBound, *, arrivals_per_second: float, served_per_second: float, seconds: float
) -> Served:
    """Arrivals at a fixed rate whatever the answers, for `seconds`; the process finishes the
    oldest command every 1/served_per_second while it has any, until none is left."""
    served = Served()
    queue: deque[float] = deque()
    next_arrival, next_completion = 0.0, float("inf")
    gap = 1 / served_per_second
    while next_arrival < seconds or queue:
        if next_completion <= next_arrival or next_arrival >= seconds:
            now = next_completion
            admitted = queue.popleft()
            rule.done(now)
            served.times_in_flight.append((admitted, now - admitted))
            next_completion = now + gap if queue else float("inf")
        else:
            now = next_arrival
            if rule.admit(now):
                queue.append(now)
                if len(queue) == 1:
                    next_completion = now + gap
            else:
                served.refused += 1
            next_arrival = now + 1 / arrivals_per_second
    return served


def closed_loop(
    rule: LatencyBound, *, clients: int, served_per_second: float, seconds: float
) -> Served:
    """`clients` that each send their next command as soon as the last one is answered."""
    served = Served()
    queue: deque[float] = deque()
    now = 0.0
    for _ in range(clients):
        assert rule.admit(now)
        queue.append(now)
    while now < seconds:
        now += 1 / served_per_second
        admitted = queue.popleft()
        rule.done(now)
        served.times_in_flight.append((admitted, now - admitted))
        if rule.admit(now):
            queue.append(now)
        else:
            served.refused += 1
    return served


def test_before_any_measure_the_bound_is_the_ceiling() -> None:
    rule = LatencyBound(TARGET, ceiling=3)
    assert [rule.admit(0.0) for _ in range(4)] == [True, True, True, False]
    rule.done(0.001)
    assert rule.admit(0.002)
    assert rule.in_flight == 3


def test_at_twice_capacity_admitted_commands_stay_near_the_target() -> None:
    rule = LatencyBound(TARGET, CEILING)
    served = open_loop(rule, arrivals_per_second=800, served_per_second=400, seconds=3.0)

    # Little's law: the process serves 400/s, so 12 in flight take 30 ms each.
    assert rule.capacity == pytest.approx(400, rel=0.1)
    assert 11 <= rule.bound <= 13
    settled = served.took_after(0.5)
    assert sum(settled) / len(settled) <= TARGET * 1.05
    assert max(settled) <= TARGET * 1.3  # a few commands over while the bound settles
    assert len(settled) == pytest.approx(400 * 2.5, rel=0.02)  # still serving at capacity
    assert served.refused == pytest.approx(800 * 3 - len(served.times_in_flight), abs=40)


def test_with_the_fixed_ceiling_alone_the_same_load_waits_four_times_longer() -> None:
    rule = LatencyBound(target_seconds=3600, ceiling=CEILING)  # a target never reached
    served = open_loop(rule, arrivals_per_second=800, served_per_second=400, seconds=3.0)
    assert rule.bound == CEILING
    assert min(served.took_after(0.5)) >= CEILING / 400 - 1 / 400  # ~100 ms: the queue of 40


def test_a_closed_loop_served_within_the_target_is_never_refused() -> None:
    rule = LatencyBound(TARGET, CEILING)
    # 16 clients served 800/s: 20 ms each, inside 30 ms; the bound must stay above 16.
    served = closed_loop(rule, clients=16, served_per_second=800, seconds=5.0)
    assert served.refused == 0
    assert rule.bound >= 16


def test_when_the_process_gets_faster_the_bound_follows() -> None:
    rule = LatencyBound(TARGET, CEILING)
    open_loop(rule, arrivals_per_second=800, served_per_second=400, seconds=1.0)
    assert rule.bound < 13

    # The same surge on a process twice as fast (the host got quieter): 24 fit in 30 ms.
    start = 2.0
    faster = LatencyBound(TARGET, CEILING)
    faster.capacity, faster.bound = rule.capacity, rule.bound
    served = open_loop(faster, arrivals_per_second=1600, served_per_second=800, seconds=3.0)
    assert 23 <= faster.bound <= 24
    settled = served.took_after(start - 1.0)
    assert sum(settled) / len(settled) <= TARGET * 1.05
    assert max(settled) <= TARGET * 1.3


def test_a_slow_window_pulls_the_capacity_down_only_part_of_the_way() -> None:
    rule = LatencyBound(TARGET, CEILING)
    # Ten commands taken at once, answered one every 10 ms: 100/s, 55 ms each on average.
    for _ in range(10):
        assert rule.admit(0.0)
    for n in range(1, 11):
        rule.done(n * 0.010)
    assert rule.time_in_flight == pytest.approx(0.055)
    initial = CEILING / TARGET
    assert rule.capacity == pytest.approx(initial + SMOOTHING * (100 - initial))
    assert rule.bound == int(rule.capacity * TARGET)
    assert rule.bound > 1


def test_the_bound_never_falls_below_one_command() -> None:
    rule = LatencyBound(TARGET, CEILING)
    # One command a second: 0.03 commands within the target, yet one is always admitted.
    served = open_loop(rule, arrivals_per_second=10, served_per_second=1, seconds=5.0)
    assert rule.bound == 1
    assert served.refused > 0
    assert rule.in_flight == 0
    assert [rule.admit(60.0), rule.admit(60.0)] == [True, False]


def test_windows_without_completions_change_nothing() -> None:
    rule = LatencyBound(TARGET, CEILING)
    assert rule.admit(0.0)
    rule.admit(10 * WINDOW_SECONDS)  # in flight for ten windows, none finished yet
    assert rule.bound == CEILING
    assert rule.capacity == CEILING / TARGET


def test_the_floor_holds_however_slow_the_process_measures() -> None:
    rule = LatencyBound(TARGET, CEILING, floor=24)
    served = open_loop(rule, arrivals_per_second=800, served_per_second=400, seconds=2.0)
    assert rule.capacity * TARGET < 13  # what Little's law alone would admit
    assert rule.bound == 24
    assert served.refused > 0
    assert LatencyBound(TARGET, ceiling=8, floor=24).bound == 8  # the ceiling wins
