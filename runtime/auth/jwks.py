"""Where a verifier finds the public key of a token's `kid`: the identity's JWKS, cached.

`JwksCache` fetches `GET {jwks_url}` with an async client (the event loop never waits on a
socket), keeps the key set, and fetches again when asked for a `kid` it does not hold (a new
key after a rotation) or when its copy is older than `max_age`, but at most once per
`min_interval` seconds after a fetch that succeeded, one fetch at a time (a copy past its age
is refreshed in the background while the held key answers): a flood of tokens with made-up
`kid`s costs the identity one request per interval, and each of them is refused (`None`: the
key set fetched last has no such key). A fetch that fails leaves the last good key set in use,
so tokens of its keys keep verifying while the identity is down; the next fetch may follow it
`retry_pause` seconds after it failed (a second by default, never more than `min_interval`),
so the keys come back with the identity.
A `kid` the held keys lack while the last fetch failed (none ever succeeded, or the identity
went down since) cannot be decided: `KeysUnavailable`, which a service answers with a 503, not
a 401 that would make its client throw away a token that may be good. `StaticKeys` is a fixed
key set (the embedded default's development key, tests).
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

log = logging.getLogger("strata.auth.jwks")

FETCH_TIMEOUT = httpx.Timeout(3.0, connect=2.0)
RETRY_PAUSE = 1.0
"""Seconds after a failed fetch before the next may start (at most the refetch interval)."""


class KeysUnavailable(Exception):
    """The identity's keys cannot be fetched, and the held ones do not have the token's `kid`:
    the token can be neither accepted nor refused (a 503)."""


class KeySource(Protocol):
    async def key(self, kid: str) -> ECKey | None:
        """The EC public key with this `kid`, or None when there is none; `KeysUnavailable`
        when the key set cannot be had to tell."""
        ...


def ec_keys(document: Any) -> dict[str, ECKey]:
    """The EC keys of a JWKS document, by `kid` (keys of other types or without one are left
    out: only ES256 tokens are accepted)."""
    listed = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(listed, list):
        raise ValueError('a JWKS is an object with a "keys" list')
    try:
        keys = KeySet.import_key_set({"keys": listed}).keys
    except (TypeError, KeyError, AttributeError) as error:  # a member of the wrong type
        raise ValueError(f"a key of the JWKS is malformed: {error!r}") from None
    return {key.kid: key for key in keys if isinstance(key, ECKey) and key.kid}


class StaticKeys:
    """A fixed key set."""

    def __init__(self, keys: dict[str, ECKey]) -> None:
        self._keys = keys

    async def key(self, kid: str) -> ECKey | None:
        return self._keys.get(kid)


class JwksCache:
    """The key set at `url`, cached and refetched as the module says."""

    def __init__(
        self,
        url: str,
        *,
        min_interval: float,
        max_age: float,
        retry_pause: float = RETRY_PAUSE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._min_interval = min_interval
        self._max_age = max_age
        self._retry_pause = min(retry_pause, min_interval)
        self._clock = clock
        self._keys: dict[str, ECKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._failure: str | None = None
        """Why the last fetch failed; None after one that succeeded (or before any)."""
        self._fetching = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self.fetches = 0
        """Fetch attempts so far, failed ones included."""

    async def key(self, kid: str) -> ECKey | None:
        if kid not in self._keys:
            await self._refresh()
        elif self._expired() and self._may_fetch() and self._background is None:
            # The held key still answers; the request does not wait for the refresh.
            self._background = asyncio.create_task(self._refresh())
            self._background.add_done_callback(self._forget_background)
        key = self._keys.get(kid)
        if key is None and self._failure is not None:
            raise KeysUnavailable(f"the identity service's keys cannot be fetched: {self._failure}")
        return key

    async def settled(self) -> None:
        """Wait for the background refresh, if one is running."""
        if self._background is not None:
            await asyncio.shield(self._background)

    def _forget_background(self, _task: "asyncio.Task[None]") -> None:
        self._background = None

    def _expired(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self._max_age

    def _may_fetch(self) -> bool:
        attempted = self._attempted_at
        pause = self._min_interval if self._failure is None else self._retry_pause
        return attempted is None or self._clock() - attempted >= pause

    async def _refresh(self) -> None:
        # Behind a fetch in flight, wait for its keys rather than answer without them.
        async with self._fetching:
            if not self._may_fetch():
                return
            self._attempted_at = self._clock()
            self.fetches += 1
            try:
                self._keys = await self._fetch()
                self._fetched_at = self._clock()
                self._failure = None
            except (httpx.HTTPError, ValueError, JoseError) as error:
                # The pause runs from the failure: the requests that waited behind a slow fetch
                # (a timeout) take its outcome rather than each try again in turn.
                self._attempted_at = self._clock()
                self._failure = _failure(error)
                held = f"keeping the {len(self._keys)} keys held" if self._keys else "no keys held"
                log.warning("JWKS fetch from %s failed (%s): %s", self.url, held, error)

    async def _fetch(self) -> dict[str, ECKey]:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client:
            response = await client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            return ec_keys(response.json())


def _failure(error: Exception) -> str:
    """Why a fetch failed, in a few words a problem's `detail` may carry (the log has the
    rest)."""
    if isinstance(error, httpx.HTTPStatusError):
        return f"it answered {error.response.status_code}"
    if isinstance(error, httpx.TimeoutException):
        return "it did not answer in time"
    if isinstance(error, httpx.HTTPError):
        return "it cannot be reached"
    return "its answer is not a JWKS"
