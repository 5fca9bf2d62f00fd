"""Admission control: a bound on the commands one process has in flight, adapted to its speed.

A service that queues what it cannot serve answers late for everyone: past its capacity the
queue grows until requests time out after seconds, still holding their place. Instead, a command
(POST, PUT, PATCH, DELETE) that arrives while the bound of commands is in flight in this process
is answered 503 with `Retry-After` at once, before anything reads its body or token, and nothing
is done for it; the commands admitted keep a short queue, and their latency with it.

The bound follows Little's law: commands in flight = service rate x time each spends in flight.
`LatencyBound` measures the rate at which the process completes commands while it has any in
flight (what it serves, not the rate clients happen to send) and keeps the bound at its capacity
x the latency target, between a floor and the hard ceiling. While commands finish faster than
the target the bound sits above the commands in flight and nobody is refused; when they take
longer (more arrive than the process serves, or the host slows down) the bound falls to what the
process finishes within the target. Each process (uvicorn worker) counts its own: it runs one
event loop, so the counts need no lock.
"""

import math
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.http.json_bodies import COMMAND_METHODS
from runtime.http.problems import unavailable

WINDOW_SECONDS = 0.1
"""How often the rate and the time in flight are measured: short enough to follow a surge
within a few tens of commands, long enough to hold several group commits."""

SMOOTHING = 0.3
"""How far a slow window pulls the capacity estimate towards its own rate."""


class LatencyBound:
    """The admission rule, on a clock it is given (no I/O): `admit` before a command, `done`
    after it. The bound stays between `floor` and `ceiling`.

    Every window it measures the rate at which commands complete while some are in flight, and
    their mean time in flight (Little's law: commands in flight integrated over the window /
    commands completed). The bound is the process's capacity x the target, the capacity being
    the best rate measured while commands finish within the target: such a window only shows
    what the process can do at least. Only a window past the target pulls the capacity down,
    part of the way, to its own rate: a slow start, a host that stays slower, or a surge that
    the bound has not caught yet. Held at the best rate rather than the last one, the bound does
    not fall with every slow window. It starts at `ceiling` (capacity = ceiling / target).

    The floor is there for clients that retry a 503 at once (no back-off): each refusal then
    brings the next request straight back, the loop spends its time refusing them, the commands
    admitted slow down, the bound falls and refuses more of them, until the process mostly
    refuses. A floor at least the connections a process serves in a closed loop keeps a busy
    but bounded population from being turned into such a storm.
    """

    def __init__(self, target_seconds: float, ceiling: int, floor: int = 1) -> None:
        self.target = target_seconds
        self.ceiling = ceiling
        self.floor = max(1, min(floor, ceiling))
        self.capacity = ceiling / target_seconds  # commands per busy second
        self.bound = ceiling
        self.in_flight = 0
        self.time_in_flight: float | None = None  # the last window's mean, seconds
        self._window_start: float | None = None
        self._last_change = 0.0
        self._busy = 0.0  # seconds of this window with at least one command in flight
        self._held = 0.0  # commands in flight integrated over this window (command-seconds)
        self._completed = 0  # commands completed in this window

    def admit(self, now: float) -> bool:
        """Take one more command in flight, unless the bound is reached."""
        self._advance(now)
        self._close_window_if_due(now)
        if self.in_flight >= self.bound:
            return False
        self.in_flight += 1
        return True

    def done(self, now: float) -> None:
        """One admitted command has been answered."""
        self._advance(now)
        self.in_flight -= 1
        self._completed += 1
        self._close_window_if_due(now)

    def _advance(self, now: float) -> None:
        if self._window_start is None:
            self._window_start = now
        elif self.in_flight:
            elapsed = now - self._last_change
            self._busy += elapsed
            self._held += elapsed * self.in_flight
        self._last_change = now

    def _close_window_if_due(self, now: float) -> None:
        assert self._window_start is not None  # set by `_advance`
        if now - self._window_start < WINDOW_SECONDS:
            return
        if self._completed and self._busy > 0:
            rate = self._completed / self._busy
            self.time_in_flight = self._held / self._completed
            if self.time_in_flight > self.target:
                self.capacity += SMOOTHING * (rate - self.capacity)
            else:
                self.capacity = max(self.capacity, rate)
            wanted = math.floor(self.capacity * self.target)
            self.bound = max(self.floor, min(self.ceiling, wanted))
        self._window_start = now
        self._busy = self._held = 0.0
        self._completed = 0


class Admission:
    """ASGI middleware admitting commands under a `LatencyBound`; queries pass untouched."""

    def __init__(
        self,
        app: ASGIApp,
        ceiling: int,
        target_seconds: float,
        registry: CollectorRegistry,
        floor: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.rule = LatencyBound(target_seconds, ceiling, floor)
        self.clock = clock
        self._refused = Counter(
            "strata_commands_refused",
            "Commands answered 503 at once: the process had its bound of commands in flight",
            registry=registry,
        )
        rule = self.rule
        _gauge(
            registry,
            "strata_commands_in_flight",
            "Commands this process is handling",
            lambda: rule.in_flight,
        )
        _gauge(
            registry,
            "strata_commands_in_flight_limit",
            "Commands this process admits at once now: its capacity x the latency target, between"
            " STRATA_MIN_COMMANDS_IN_FLIGHT and STRATA_MAX_COMMANDS_IN_FLIGHT",
            lambda: rule.bound,
        )
        _gauge(
            registry,
            "strata_commands_capacity",
            "Commands per second this process is estimated to complete while it has some in"
            " flight: the best rate measured within the latency target, lowered by slower windows",
            lambda: rule.capacity,
        )
        _gauge(
            registry,
            "strata_commands_time_in_flight_seconds",
            "Mean time a command spent in flight over the last measured window (0 until measured)",
            lambda: rule.time_in_flight or 0.0,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in COMMAND_METHODS:
            await self.app(scope, receive, send)
            return
        rule = self.rule
        if not rule.admit(self.clock()):
            await self._refuse(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            rule.done(self.clock())

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._refused.inc()
        detail = (
            f"{self.rule.in_flight} commands are in flight already, this process's bound now;"
            " nothing was done, retry later"
        )
        await unavailable(Request(scope), detail)(scope, receive, send)


def _gauge(
    registry: CollectorRegistry, name: str, documentation: str, read: Callable[[], float]
) -> None:
    Gauge(name, documentation, registry=registry).set_function(read)
