"""The token issuer: signs access tokens with the current key, publishes the JWKS, rotates keys,
and verifies its own tokens (for its operator endpoints)."""

import time
from collections.abc import Callable
from typing import Any

from identity.keys import LEEWAY_SECONDS, KeyCache, StoredKey, new_key, published_keys, signing_key
from identity.store import IdentityStore
from identity.tokens import Grant, InvalidToken, IssuedToken, mint, verify

Clock = Callable[[], int]
"""Epoch seconds now."""


def system_clock() -> int:
    return int(time.time())


class NoSigningKey(Exception):
    """The store holds no active key: the service was not prepared (`Identity.prepare`)."""


class Issuer:
    def __init__(
        self,
        store: IdentityStore,
        issuer: str,
        token_seconds: int,
        publish_ahead_seconds: int = 0,
        clock: Clock = system_clock,
    ) -> None:
        self.issuer = issuer
        self.token_seconds = token_seconds
        self._store = store
        self._publish_ahead = publish_ahead_seconds
        self.clock = clock
        self._keys = KeyCache()

    def access_token(self, grant: Grant, lifetime: int | None = None) -> IssuedToken:
        """A token for `grant`, signed by the key active now (read from the store every time, so
        a rotation made by another replica or the CLI takes effect at once). Its lifetime is
        the setting's unless `lifetime` says otherwise."""
        now = self.clock()
        stored = signing_key(self._store.signing_keys(), now)
        if stored is None:
            raise NoSigningKey("no active signing key; was the identity database prepared?")
        lifetime = lifetime or self.token_seconds
        return mint(grant, self._keys.key(stored), self.issuer, now, lifetime)

    def published(self) -> list[StoredKey]:
        return published_keys(self._store.signing_keys(), self.clock(), self.token_seconds)

    def jwks(self) -> dict[str, Any]:
        return self._keys.jwks(self.published())

    def verify(self, token: str) -> Grant:
        """The grant of one of this issuer's valid tokens, or InvalidToken."""
        keys = [self._keys.key(stored) for stored in self.published()]
        return verify(token, keys, self.issuer, self.clock(), leeway=LEEWAY_SECONDS)

    def first_key(self) -> StoredKey:
        """A key to start with, active at once (stored only if the store has none)."""
        return new_key(self.clock())

    def rotate(self) -> StoredKey:
        """A new key, published now and signing after the publish-ahead delay; the previous key
        stays published until the tokens it signed have expired."""
        newest = max((k.active_from for k in self._store.signing_keys()), default=0)
        # a second after the newest at least: keys made in one second would tie
        key = new_key(max(self.clock() + self._publish_ahead, newest + 1))
        self._store.add_signing_key(key)
        return key


__all__ = ["Clock", "InvalidToken", "Issuer", "NoSigningKey", "system_clock"]
