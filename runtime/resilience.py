"""Calling a downstream service (a payment provider, a carrier) without being held up by it.

- `CircuitBreaker`: one per downstream, on `purgatory`'s state machine, behind a lock so that a
  half-open breaker lets exactly one probe through (every other caller fails fast until the probe
  settles it). Its state is the gauge `strata_breaker_state{downstream}` (0 closed, 1 half-open,
  2 open); each transition counts in `strata_breaker_transitions_total{downstream,to}` and logs a
  line. Its thresholds may change while it runs (`reconfigure`, `follow`: hot reload of
  `breaker_failure_threshold` and `breaker_recovery_seconds`); the gauges
  `strata_breaker_failure_threshold{downstream}` and `strata_breaker_recovery_seconds{downstream}`
  show the ones in force.
- `RetryPolicy`: `tenacity`, exponential backoff with jitter, a few attempts, transient errors
  only; an open breaker is not retried (it is the answer "not now").
- `Downstream`: one JSON request with its `Idempotency-Key` (the same on every attempt) through
  the retry policy and the breaker, over an `http_client` with connect and read timeouts.
"""

import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from typing import Any, ClassVar, Self, TypeVar

import httpx
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from purgatory import ContextChanged, Event, SyncCircuitBreakerFactory
from purgatory.domain.model import CLOSED, HALF_OPENED, OpenedState
from pydantic import BaseModel, ValidationError
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from runtime.settings import CommonSettings

log = logging.getLogger("strata.resilience")

T = TypeVar("T")
Answer = TypeVar("Answer", bound=BaseModel)


class DownstreamUnavailable(Exception):
    """The downstream was not reached, failed (5xx, 429) or timed out: the outcome is unknown, so
    the call may be made again later with the same idempotency key."""


class BreakerOpen(DownstreamUnavailable):
    """The downstream's breaker is open (or half-open with its one probe in flight): the call was
    not made at all."""


class DownstreamProtocolError(Exception):
    """The downstream refused the request (4xx) or answered what the client cannot read: a bug on
    one side, which no retry mends."""


class BreakerState(IntEnum):
    """The values of the `strata_breaker_state` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


def _state_of(name: str) -> BreakerState:
    """A state of purgatory's model, by its name."""
    if name == CLOSED:
        return BreakerState.CLOSED
    return BreakerState.HALF_OPEN if name == HALF_OPENED else BreakerState.OPEN


class BreakerMetrics:
    """The breakers' metrics on one Prometheus registry; get them with `breaker_metrics`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.state = Gauge(
            "strata_breaker_state",
            "Circuit breaker state per downstream: 0 closed, 1 half-open, 2 open.",
            ("downstream",),
            registry=registry,
        )
        self.transitions = Counter(
            "strata_breaker_transitions",
            "Circuit breaker transitions per downstream, by the state entered.",
            ("downstream", "to"),
            registry=registry,
        )
        self.failure_threshold = Gauge(
            "strata_breaker_failure_threshold",
            "Failures in a row that open the circuit breaker, per downstream.",
            ("downstream",),
            registry=registry,
        )
        self.recovery_seconds = Gauge(
            "strata_breaker_recovery_seconds",
            "Seconds an open circuit breaker waits before its probe, per downstream.",
            ("downstream",),
            registry=registry,
        )


def breaker_metrics(registry: CollectorRegistry | None = None) -> BreakerMetrics:
    """The breaker metrics registered on `registry` (the default registry if none), made once."""
    return _metrics_on(registry or REGISTRY)


@cache
def _metrics_on(registry: CollectorRegistry) -> BreakerMetrics:
    return BreakerMetrics(registry)


class CircuitBreaker:
    """The breaker of one downstream: after `failure_threshold` failures in a row it opens, and
    calls fail fast with `BreakerOpen`; `recovery_seconds` later the next call is the single
    probe (half-open): its success closes the breaker, its failure opens it again.

    Only exceptions of the `failures` types count as failures; any other exception passes through
    as an answer of a healthy downstream.
    """

    def __init__(
        self,
        downstream: str,
        *,
        failure_threshold: int,
        recovery_seconds: float,
        failures: tuple[type[BaseException], ...] = (DownstreamUnavailable,),
        metrics: BreakerMetrics | None = None,
    ) -> None:
        self.downstream = downstream
        self._metrics = metrics or breaker_metrics()
        self._metrics.state.labels(downstream).set(BreakerState.CLOSED)
        factory = SyncCircuitBreakerFactory(
            default_threshold=failure_threshold, default_ttl=recovery_seconds
        )
        factory.add_listener(self._on_breaker_event)
        self._breaker = factory.get_breaker(
            downstream, exclude=[(BaseException, lambda error: not isinstance(error, failures))]
        )
        # purgatory's in-memory breaker is not thread-safe and lets every caller through while
        # half-open: the lock serialises its bookkeeping (never the calls themselves).
        self._lock = threading.Lock()
        self._probe_in_flight = False
        self._show_thresholds()

    def reconfigure(self, *, failure_threshold: int, recovery_seconds: float) -> None:
        """Take new thresholds from the next failure or probe on; the state stays as it is (an
        open breaker stays open, its failures counted so far still count)."""
        with self._lock:
            self._breaker.context.threshold = failure_threshold
            self._breaker.context.ttl = recovery_seconds
        self._show_thresholds()
        log.info(
            "circuit breaker of %s: threshold %d failures, recovery %g s",
            self.downstream,
            failure_threshold,
            recovery_seconds,
            extra={"downstream": self.downstream},
        )

    def follow(self, settings: CommonSettings) -> None:
        """A live-settings hook (`BREAKER_SETTINGS`): take the thresholds of the settings."""
        self.reconfigure(
            failure_threshold=settings.breaker_failure_threshold,
            recovery_seconds=settings.breaker_recovery_seconds,
        )

    def _show_thresholds(self) -> None:
        context = self._breaker.context
        self._metrics.failure_threshold.labels(self.downstream).set(context.threshold)
        self._metrics.recovery_seconds.labels(self.downstream).set(context.ttl)

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return _state_of(self._breaker.context.state)

    def call(self, operation: Callable[[], T]) -> T:
        with self.guard():
            return operation()

    async def call_async(self, operation: Callable[[], Awaitable[T]]) -> T:
        with self.guard():
            return await operation()

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run the block as one call through the breaker, or raise `BreakerOpen` at once."""
        probe = self._admit()
        try:
            yield
        except Exception as error:
            self._settle(error, probe)
            raise
        except BaseException:  # cancelled or interrupted: no answer, so no verdict either
            self._abandon(probe)
            raise
        self._settle(None, probe)

    def _admit(self) -> bool:
        """Let a call through, or raise BreakerOpen; whether the call is the half-open probe."""
        with self._lock:
            if self._probe_in_flight:
                raise BreakerOpen(f"{self.downstream}: circuit breaker half-open, probe in flight")
            try:
                self._breaker.__enter__()
            except OpenedState as error:
                # purgatory raises one instance again and again: drop the traceback it collects.
                error.__traceback__ = None
                raise BreakerOpen(f"{self.downstream}: circuit breaker open") from None
            self._publish()  # open -> half-open happened on entry: report it now, not at exit
            self._probe_in_flight = self._breaker.context.state == HALF_OPENED
            return self._probe_in_flight

    def _settle(self, error: BaseException | None, probe: bool) -> None:
        with self._lock:
            if probe:
                self._probe_in_flight = False
            elif self._breaker.context.state == HALF_OPENED:
                return  # a call admitted before the breaker opened: the probe decides, not it
            self._breaker.__exit__(type(error) if error else None, error, None)

    def _abandon(self, probe: bool) -> None:
        """A call that ended without an answer: a probe leaves the breaker half-open, and the
        next call probes instead."""
        if probe:
            with self._lock:
                self._probe_in_flight = False

    def _publish(self) -> None:
        """Hand purgatory's pending events to its message bus (and so to `_on_breaker_event`)."""
        context = self._breaker.context
        while context.messages:
            self._breaker.messagebus.handle(context.messages.pop(0), self._breaker.uow)

    def _on_breaker_event(self, name: str, kind: str, event: Event) -> None:
        if not isinstance(event, ContextChanged):
            return
        state = _state_of(event.state)
        to = state.name.lower()
        self._metrics.state.labels(name).set(state)
        self._metrics.transitions.labels(name, to).inc()
        logger = log.warning if state is BreakerState.OPEN else log.info
        logger(
            "circuit breaker of %s is now %s",
            name,
            to.replace("_", "-"),
            extra={"downstream": name, "breaker_state": to},
        )


BREAKER_SETTINGS = frozenset({"breaker_failure_threshold", "breaker_recovery_seconds"})
"""The settings `CircuitBreaker.follow` takes."""


def breaker_from_settings(
    downstream: str, settings: CommonSettings, metrics: BreakerMetrics | None = None
) -> CircuitBreaker:
    return CircuitBreaker(
        downstream,
        failure_threshold=settings.breaker_failure_threshold,
        recovery_seconds=settings.breaker_recovery_seconds,
        metrics=metrics,
    )


def _transient(error: BaseException) -> bool:
    return isinstance(error, DownstreamUnavailable) and not isinstance(error, BreakerOpen)


def _log_retry(state: Any) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.info(
        "retrying a downstream call after attempt %d: %s",
        state.attempt_number,
        error,
        extra={"attempt": state.attempt_number},
    )


@dataclass(frozen=True)
class RetryPolicy:
    """At most `attempts` tries of a call, `first_wait` seconds apart and then exponentially
    more (up to `max_wait`), each wait plus a jitter of up to `first_wait`. Only
    `DownstreamUnavailable` other than `BreakerOpen` is retried; the last error is raised."""

    attempts: int = 3
    first_wait: float = 0.05
    max_wait: float = 1.0

    def call(self, operation: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.first_wait, max=self.max_wait)
            + wait_random(0, self.first_wait),
            retry=retry_if_exception(_transient),
            before_sleep=_log_retry,
            reraise=True,
        )
        return retrying(operation)


def retry_from_settings(settings: CommonSettings) -> RetryPolicy:
    return RetryPolicy(attempts=settings.provider_retries + 1)


def http_client(timeout: float, *, connect_timeout: float | None = None) -> httpx.Client:
    """A pooled client whose every request gives up after `timeout` seconds without progress
    (connect: `connect_timeout`, the same by default)."""
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=connect_timeout or timeout))


class Acknowledged(BaseModel):
    """An answer whose content the caller does not need: any JSON object."""


@dataclass(frozen=True)
class Downstream:
    """One downstream HTTP service as the clients of the contexts call it."""

    base_url: str
    client: httpx.Client
    breaker: CircuitBreaker
    retry: RetryPolicy
    unavailable: type[Exception] = DownstreamUnavailable
    """What a transient failure (an open breaker included) is raised as, from the original."""

    def post(self, path: str, key: str, body: Mapping[str, Any], answer: type[Answer]) -> Answer:
        """POST `body` with `Idempotency-Key: key` and read the answer (a JSON object), retrying
        transient failures: raises `unavailable` or `DownstreamProtocolError`."""
        url = self.base_url.rstrip("/") + path
        try:
            response = self.retry.call(
                lambda: self.breaker.call(lambda: self._send(url, key, body))
            )
        except DownstreamUnavailable as error:
            if isinstance(error, self.unavailable):
                raise
            raise self.unavailable(str(error)) from error
        try:
            return answer.model_validate_json(response.content)
        except ValidationError as error:
            raise DownstreamProtocolError(
                f"POST {url}: unreadable answer: {error.errors()[0]['msg']}"
            ) from None

    def _send(self, url: str, key: str, body: Mapping[str, Any]) -> httpx.Response:
        try:
            response = self.client.post(url, json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as error:
            raise DownstreamUnavailable(f"POST {url}: {error or type(error).__name__}") from error
        if response.status_code >= 500 or response.status_code == 429:
            raise DownstreamUnavailable(f"POST {url}: {_status(response)}")
        if response.status_code >= 400:
            raise DownstreamProtocolError(f"POST {url}: {_status(response)}")
        return response


class DownstreamClient:
    """The base of a context's client of one downstream: its `Downstream` from the parts, or
    from the settings (a breaker named `downstream`, the retry policy of the settings)."""

    downstream: ClassVar[str]
    """The breaker's name: the `downstream` label of its metrics."""
    unavailable: ClassVar[type[Exception]]
    """The context's error for a downstream that is unavailable (open breaker included)."""

    def __init__(
        self, base_url: str, client: httpx.Client, breaker: CircuitBreaker, retry: RetryPolicy
    ) -> None:
        self._downstream = Downstream(base_url, client, breaker, retry, self.unavailable)

    @property
    def breaker(self) -> CircuitBreaker:
        return self._downstream.breaker

    @classmethod
    def base_url(cls, settings: CommonSettings) -> str:
        raise NotImplementedError

    @classmethod
    def from_settings(
        cls, settings: CommonSettings, client: httpx.Client, metrics: BreakerMetrics | None = None
    ) -> Self:
        breaker = breaker_from_settings(cls.downstream, settings, metrics)
        return cls(cls.base_url(settings), client, breaker, retry_from_settings(settings))


def _status(response: httpx.Response) -> str:
    """The status and, when the body is a problem, its detail."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return f"{response.status_code} {detail or response.reason_phrase}"
