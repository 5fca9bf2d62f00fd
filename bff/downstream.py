"""The read API as a BFF calls it: one GET under a deadline and a circuit breaker per section.

Each call names its section (`profile`, `orders`, ...): the breaker of that section of the read
API (`strata_breaker_state{downstream="read-api:<section>"}`), so a read store that is down
(Redis: profiles, stats, leaderboards) opens the breakers of its sections and leaves the others
(PostgreSQL: orders) alone. What an answer means:

- 2xx: the JSON body.
- 401, 403, 404, 422: the caller's own problem; `Refused` carries it, the BFF answers it as is.
- 429: the caller is over its own rate limit at the read API: `RateLimited` (with the read API's
  `Retry-After`), not a failure of the read API: one caller's reloads must not open a breaker
  every caller shares.
- 503 `position-not-reached`: the read model is behind the caller's `position`: `Behind`, not a
  failure of the read API.
- no answer within the deadline, a transport error or 5xx: `DownstreamUnavailable`, a failure
  the breaker counts; an open breaker is `BreakerOpen` at once.
- anything else (another 4xx, a body that is not JSON): `DownstreamProtocolError`, a bug; the
  breaker does not count it either (no 4xx says the read API is unwell).

The deadline of a call is `timeout` plus the read-your-writes wait it asks for (its `wait`, or the
read API's default wait when it sends a `position` without one); it bounds the whole call, and
the HTTP client's own timeouts follow it (only connecting keeps the bare `timeout`).

What the errors say names the read API and the path, never its address.
"""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from runtime.http.header_fields import retry_after_seconds
from runtime.http.problem_types import POSITION_NOT_REACHED
from runtime.resilience import (
    CircuitBreaker,
    DownstreamProtocolError,
    DownstreamUnavailable,
    breaker_from_settings,
)
from runtime.settings import CommonSettings

RELAYED = frozenset({401, 403, 404, 422})
Params = Mapping[str, str | int]
Readiness = Literal["ready", "not-ready", "unreachable"]


class Refused(Exception):
    """The downstream refused the caller's request (one of `RELAYED`); its problem body."""

    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str]) -> None:
        super().__init__(str(body.get("detail", status)))
        self.status = status
        self.body = body
        self.headers = dict(headers)


class RateLimited(Exception):
    """The read API refused the caller's call for its rate limit (429): the caller's own limit,
    so not a failure of the read API; `retry_after` is its `Retry-After` in seconds, if given."""

    def __init__(self, message: str, retry_after: int | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Behind(Exception):
    """The read models behind a section have not reached the caller's `position` in time."""


@dataclass(frozen=True)
class Forwarded:
    """What every downstream call of one request carries: the caller's `Authorization`, its
    correlation id, and its read-your-writes `position` and `wait`."""

    authorization: str
    correlation_id: str | None = None
    position: str | None = None
    wait: float | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": self.authorization}
        if self.correlation_id:
            headers["X-Correlation-Id"] = self.correlation_id
        return headers

    def params(self) -> dict[str, str | int]:
        params: dict[str, str | int] = {}
        if self.position is not None:
            params["position"] = self.position
        if self.wait is not None:
            params["wait"] = f"{self.wait:g}"
        return params


@dataclass
class Breakers:
    """One breaker per section, made on first use with the settings' thresholds."""

    settings: CommonSettings
    prefix: str
    _made: dict[str, CircuitBreaker] = field(default_factory=dict)

    def of(self, section: str) -> CircuitBreaker:
        name = f"{self.prefix}:{section}"
        if name not in self._made:
            self._made[name] = breaker_from_settings(name, self.settings)
        return self._made[name]

    def follow(self, settings: CommonSettings) -> None:
        """A live-settings hook (`BREAKER_SETTINGS`): the breakers made, and those made from
        now on, take the thresholds of `settings`."""
        self.settings = settings
        for breaker in self._made.values():
            breaker.follow(settings)


class ReadApi:
    def __init__(
        self,
        base_url: str,
        client: httpx.AsyncClient,
        breakers: Breakers,
        timeout: float,
        default_wait: float = 0.0,
    ) -> None:
        """`timeout`: what a call may take besides its wait; `default_wait`: how long the read
        API waits for a `position` sent without a `wait` (`STRATA_READ_WAIT_DEFAULT_SECONDS`)."""
        self._base_url = base_url.rstrip("/")
        self._client = client
        self.breakers = breakers
        self._timeout = timeout
        self._default_wait = default_wait

    def deadline(self, forwarded: Forwarded) -> float:
        """Seconds one call for `forwarded` may take in all: the timeout plus its wait."""
        if forwarded.wait is not None:
            return self._timeout + forwarded.wait
        return self._timeout + (self._default_wait if forwarded.position is not None else 0.0)

    async def get(
        self, section: str, path: str, forwarded: Forwarded, params: Params | None = None
    ) -> Any:
        """The JSON answer to `GET path` for `section` (see the module for the errors)."""
        query = {**(params or {}), **forwarded.params()}
        deadline = self.deadline(forwarded)
        call = self.breakers.of(section).call_async
        return await call(lambda: self._fetch(path, query, forwarded.headers(), deadline))

    async def _fetch(
        self, path: str, query: Params, headers: dict[str, str], deadline: float
    ) -> Any:
        what = f"read API GET {path}"
        # The client's own timeouts (read, write, pool) would cut a long wait short: they
        # follow the deadline; connecting gets the bare timeout.
        timeout = httpx.Timeout(deadline, connect=min(self._timeout, deadline))
        try:
            async with asyncio.timeout(deadline):
                response = await self._client.get(
                    self._base_url + path, params=query, headers=headers, timeout=timeout
                )
        except TimeoutError:
            raise DownstreamUnavailable(f"{what}: no answer within {deadline:g} s") from None
        except httpx.TimeoutException as error:
            reason = f"{type(error).__name__} within {deadline:g} s"
            raise DownstreamUnavailable(f"{what}: {reason}") from None
        except httpx.TransportError as error:
            # its text may hold the read API's address: the type says enough
            raise DownstreamUnavailable(f"{what}: {type(error).__name__}") from None
        return _answer(what, response)

    async def readiness(self) -> Readiness:
        """Whether the read API can serve now: `ready`, `not-ready` (it answers, but its
        /readyz does not: a read store is down) or `unreachable` (no answer in time)."""
        try:
            response = await self._client.get(self._base_url + "/readyz", timeout=self._timeout)
        except httpx.TransportError:
            return "unreachable"
        return "ready" if response.status_code == 200 else "not-ready"


def _answer(what: str, response: httpx.Response) -> Any:
    status = response.status_code
    body = _json(response)
    if status in RELAYED and isinstance(body, dict):
        kept = {k: v for k, v in response.headers.items() if k.lower() == "www-authenticate"}
        raise Refused(status, body, kept)
    if status == 503 and isinstance(body, dict) and body.get("type") == POSITION_NOT_REACHED.uri:
        raise Behind(str(body.get("detail", "position not reached")))
    if status == 429:
        seconds = retry_after_seconds(response.headers.get("retry-after"))
        raise RateLimited(f"{what}: over the caller's rate limit (429)", seconds)
    if status >= 500:
        raise DownstreamUnavailable(f"{what}: {status}")
    if status >= 300 or body is None:
        raise DownstreamProtocolError(f"{what}: unexpected answer {status}")
    return body


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
