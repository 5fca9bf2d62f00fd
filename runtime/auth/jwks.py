"""Where a verifier finds the public key of a token's `kid`: the identity's JWKS, cached.

`JwksCache` fetches `GET {jwks_url}` with an async client (the event loop never waits on a
socket), keeps the key set, and fetches again when asked for a `kid` it does not hold (a new
key after a rotation) or when its copy is older than `max_age`, but at most once per
`min_interval` seconds, one fetch at a time (a copy past its age is refreshed in the
background while the held key answers): a flood of tokens with made-up `kid`s costs the
identity one request per interval. A fetch that fails leaves the last good key set in use, so
tokens keep verifying while the identity is down. `StaticKeys` is a fixed key set (the
embedded default's development key, tests).
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


class KeySource(Protocol):
    async def key(self, kid: str) -> ECKey | None:
        """The EC public key with this `kid`, or None when there is none."""
        ...


def ec_keys(document: Any) -> dict[str, ECKey]:
    """The EC keys of a JWKS document, by `kid` (keys of other types or without one are left
    out: only ES256 tokens are accepted)."""
    keys = KeySet.import_key_set(document).keys
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._min_interval = min_interval
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str, ECKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
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
        return self._keys.get(kid)

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
        return attempted is None or self._clock() - attempted >= self._min_interval

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
            except (httpx.HTTPError, ValueError, JoseError) as error:
                held = f"keeping the {len(self._keys)} keys held" if self._keys else "no keys held"
                log.warning("JWKS fetch from %s failed (%s): %s", self.url, held, error)

    async def _fetch(self) -> dict[str, ECKey]:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client:
            response = await client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            return ec_keys(response.json())
