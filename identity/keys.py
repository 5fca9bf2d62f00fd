"""ES256 signing keys and their lifetimes: which key signs now, which ones the JWKS publishes.

A key signs from its `active_from` until the next key's `active_from`. The JWKS publishes a key
from its creation (a rotation may publish the new key ahead of its first signature, for
verifiers that cache the JWKS) until every token it signed has expired: its successor's
`active_from` plus the access-token lifetime and `LEEWAY_SECONDS`. So no valid token ever names a
`kid` the JWKS lacks.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey

ALGORITHM = "ES256"
CURVE = "P-256"
LEEWAY_SECONDS = 60
"""Clock skew a verifier may allow on `exp`: a retired key stays published this much longer."""


@dataclass(frozen=True)
class StoredKey:
    kid: str
    private_pem: str
    active_from: int
    """Epoch seconds from which it signs."""


def new_key(active_from: int) -> StoredKey:
    """A fresh P-256 key; its `kid` is its RFC 7638 thumbprint."""
    key = ECKey.generate_key(CURVE, private=True)
    return StoredKey(key.thumbprint(), key.as_pem(private=True).decode(), active_from)


def signing_key(keys: Iterable[StoredKey], now: int) -> StoredKey | None:
    """The newest key already active at `now`."""
    active = [key for key in keys if key.active_from <= now]
    return max(active, key=_age, default=None)


def published_keys(keys: Iterable[StoredKey], now: int, token_seconds: int) -> list[StoredKey]:
    """The keys a verifier needs at `now`: the upcoming ones, the signing one, and each earlier
    one until the tokens it signed have expired. Newest first."""
    ordered = sorted(keys, key=_age, reverse=True)
    published = []
    successor: StoredKey | None = None
    for key in ordered:
        retired_at = successor.active_from if successor and successor.active_from <= now else None
        if retired_at is None or now < retired_at + token_seconds + LEEWAY_SECONDS:
            published.append(key)
        successor = key
    return published


def _age(key: StoredKey) -> tuple[int, str]:
    """Keys in the order they sign; two made at once (replicas starting together) are ordered
    by `kid`, so every replica picks the same one."""
    return key.active_from, key.kid


class KeyCache:
    """Parsed keys by `kid`: a stored key never changes, so it is parsed once."""

    def __init__(self) -> None:
        self._parsed: dict[str, ECKey] = {}

    def key(self, stored: StoredKey) -> ECKey:
        parsed = self._parsed.get(stored.kid)
        if parsed is None:
            parsed = ECKey.import_key(stored.private_pem, parameters={"kid": stored.kid})
            self._parsed[stored.kid] = parsed
        return parsed

    def jwks(self, keys: Sequence[StoredKey]) -> dict[str, Any]:
        """The public JWK set of `keys`."""
        return {"keys": [self.public_jwk(key) for key in keys]}

    def public_jwk(self, stored: StoredKey) -> dict[str, Any]:
        public = self.key(stored).as_dict(private=False)
        return {**public, "kid": stored.kid, "use": "sig", "alg": ALGORITHM}
