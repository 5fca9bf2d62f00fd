"""The read API as a BFF calls it: one GET under a deadline and a circuit breaker per section.

Each call names its section (`profile`, `orders`, ...): the breaker of that section of the read
API (`strata_breaker_state{downstream="read-api:<section>"}`), so a read store that is down
(Redis: profiles, stats, leaderboards) opens the breakers of its sections and leaves the others
(PostgreSQL: orders) alone. What an answer means:

- 2xx: the JSON body.
- 401, 403, 404, 422: the caller's own problem; `Refused` carries it, the BFF answers it as is.
- 503 `position-not-reached`: the read model is behind the caller's `position`: `Behind`, not a
  failure of the read API.
- no answer within the deadline, a transport error, 5xx or 429: `DownstreamUnavailable`, a
  failure the breaker counts; an open breaker is `BreakerOpen` at once.
- anything else (another 4xx, a body that is not JSON): `DownstreamProtocolError`, a bug.
"""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

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


class Refused(Exception):
    """The downstream refused the caller's request (one of `RELAYED`); its problem body."""

    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str]) -> None:
        super().__init__(str(body.get("detail", status)))
        self.status = status
        self.body = body
        self.headers = dict(headers)


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
        self, base_url: str, client: httpx.AsyncClient, breakers: Breakers, timeout: float
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._client = client
        self.breakers = breakers
        self._timeout = timeout

    async def get(
        self, section: str, path: str, forwarded: Forwarded, params: Params | None = None
    ) -> Any:
        """The JSON answer to `GET path` for `section` (see the module for the errors)."""
        url = self._base_url + path
        query = {**(params or {}), **forwarded.params()}
        deadline = self._timeout + (forwarded.wait or 0)
        call = self.breakers.of(section).call_async
        return await call(lambda: self._fetch(url, query, forwarded.headers(), deadline))

    async def _fetch(
        self, url: str, query: Params, headers: dict[str, str], deadline: float
    ) -> Any:
        try:
            async with asyncio.timeout(deadline):
                response = await self._client.get(url, params=query, headers=headers)
        except TimeoutError:
            raise DownstreamUnavailable(f"GET {url}: no answer within {deadline:g} s") from None
        except httpx.TransportError as error:
            raise DownstreamUnavailable(f"GET {url}: {error or type(error).__name__}") from None
        return _answer(url, response)

    async def reachable(self) -> bool:
        try:
            response = await self._client.get(self._base_url + "/healthz", timeout=self._timeout)
        except httpx.TransportError:
            return False
        return response.status_code == 200


def _answer(url: str, response: httpx.Response) -> Any:
    status = response.status_code
    body = _json(response)
    if status in RELAYED and isinstance(body, dict):
        kept = {k: v for k, v in response.headers.items() if k.lower() == "www-authenticate"}
        raise Refused(status, body, kept)
    if status == 503 and isinstance(body, dict) and body.get("type") == POSITION_NOT_REACHED.uri:
        raise Behind(str(body.get("detail", "position not reached")))
    if status >= 500 or status == 429:
        raise DownstreamUnavailable(f"GET {url}: {status}")
    if status >= 300 or body is None:
        raise DownstreamProtocolError(f"GET {url}: unexpected answer {status}")
    return body


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
