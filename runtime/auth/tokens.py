"""`TokenSource`: how a process gets the bearer token it sends to other services.

A caller asks `source.token()` right before each request: it never blocks and never does I/O,
so a worker thread and the event loop may both ask. `ClientCredentials` keeps a service
account's token fresh in the background (OAuth 2.0 client credentials, RFC 6749 §4.4: `POST`
to the identity's token endpoint with HTTP Basic client authentication), well before it
expires, retrying with backoff while the identity is down; until it holds an unexpired token it
answers None. `NoToken` is for calls that need none (the commands a process sends to an
application it serves itself). Used by the fulfilment saga's dispatcher
(`contexts.fulfilment.dispatch.HttpParticipants`) and meant for any service calling another,
such as identity calling users.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from runtime.auth.settings import AuthSettings

log = logging.getLogger("strata.auth.tokens")

TOKEN_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
REFRESH_AT = 0.7
"""A token is renewed when this fraction of its lifetime has passed."""
MIN_REFRESH_SECONDS = 1.0


class TokenSource(Protocol):
    def token(self) -> str | None:
        """The bearer token to send now, or None when there is none (yet)."""
        ...


class NoToken:
    def token(self) -> str | None:
        return None


@dataclass(frozen=True)
class StaticToken:
    value: str

    def token(self) -> str | None:
        return self.value


class TokenRefused(Exception):
    """The token endpoint answered, but with no usable token."""


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    token_url: str | None
    """None: found in the issuer's `/.well-known/openid-configuration`."""
    issuer: str


class ClientCredentials:
    """A service account's token, renewed in the background while `running()`."""

    def __init__(
        self, credentials: Credentials, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._credentials = credentials
        self._clock = clock
        self._value: str | None = None
        self._expires_at = 0.0

    def token(self) -> str | None:
        if self._value is None or self._clock() >= self._expires_at:
            return None
        return self._value

    @asynccontextmanager
    async def running(self) -> AsyncIterator["ClientCredentials"]:
        task = asyncio.create_task(self._keep_fresh(), name="service-token")
        try:
            yield self
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _keep_fresh(self) -> None:
        async with httpx.AsyncClient(timeout=TOKEN_TIMEOUT) as client:
            while True:
                lifetime = await self._fetch_until_it_works(client)
                await asyncio.sleep(max(MIN_REFRESH_SECONDS, lifetime * REFRESH_AT))

    async def _fetch_until_it_works(self, client: httpx.AsyncClient) -> float:
        retrying = AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=0.5, max=30),
            retry=retry_if_exception_type((httpx.HTTPError, TokenRefused, ValueError)),
            before_sleep=lambda state: log.warning(
                "service token not renewed: %s", state.outcome and state.outcome.exception()
            ),
        )
        async for attempt in retrying:
            with attempt:
                return await self._fetch(client)
        raise AssertionError("unreachable: retried without a stop")  # pragma: no cover

    async def _fetch(self, client: httpx.AsyncClient) -> float:
        """Fetch a token and hold it; its lifetime in seconds."""
        url = self._credentials.token_url or await _discovered_token_url(
            client, self._credentials.issuer
        )
        response = await client.post(
            url,
            data={"grant_type": "client_credentials"},
            auth=(self._credentials.client_id, self._credentials.client_secret),
        )
        if response.status_code >= 400:
            raise TokenRefused(f"{url} answered {response.status_code}: {response.text[:200]}")
        body = response.json()
        value, lifetime = body.get("access_token"), body.get("expires_in")
        if not isinstance(value, str) or not isinstance(lifetime, int | float) or lifetime <= 0:
            raise TokenRefused(f"{url} answered no access_token with a positive expires_in")
        self._value, self._expires_at = value, self._clock() + float(lifetime)
        return float(lifetime)


async def _discovered_token_url(client: httpx.AsyncClient, issuer: str) -> str:
    response = await client.get(issuer.rstrip("/") + "/.well-known/openid-configuration")
    response.raise_for_status()
    url = response.json().get("token_endpoint")
    if not isinstance(url, str):
        raise TokenRefused(f"the discovery document of {issuer} names no token_endpoint")
    return url


@asynccontextmanager
async def service_tokens(settings: AuthSettings) -> AsyncIterator[TokenSource]:
    """The token source of this process's service account: `ClientCredentials`, running, when
    `STRATA_SERVICE_CLIENT_ID` is set (and auth is on), else `NoToken`."""
    secret = settings.service_client_secret
    if settings.auth != "jwt" or settings.service_client_id is None:
        yield NoToken()
        return
    credentials = Credentials(
        settings.service_client_id,
        secret.get_secret_value() if secret else "",
        settings.service_token_url,
        settings.identity_issuer,
    )
    async with ClientCredentials(credentials).running() as source:
        yield source
