"""A bearer token in, a `Principal` out, or `InvalidToken` saying why not.

Only ES256 is accepted (`alg: none`, HS256 with the public key as secret and every other
algorithm are refused before any key is looked at); the header must name a `kid` the key source
knows (a key source that cannot tell, the identity's JWKS being out of reach, raises
`KeysUnavailable`, which is not an `InvalidToken`: a 503, not a 401); the signature must verify;
`iss` and `aud` must be the configured ones; `exp` must be in the future and `nbf`/`iat` not in
it, with `leeway` seconds for clock skew. A header or claims set naming a member twice is
refused (JSON parsers disagree on which one counts: the gateway's Envoy refuses it), and so is
an `exp`, `nbf` or `iat` that is not an instant a `datetime` can hold (years 1970 to 9999).

An ES256 signature check costs more than the rest of a command's handling, and a client sends the
same token with every request until it expires. So a token whose signature held is remembered
(a bounded LRU keyed by the token string: the same string always has the same signature and
claims) together with the key it held under; a later request with it skips the signature check
only while its `kid` still maps to that same key (a rotated or withdrawn key verifies anew).
The claims (`exp`, `nbf`, `iss`, `aud`, ...) are checked on every request.
"""

import base64
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from runtime.auth.jwks import KeySource
from runtime.auth.principal import Principal, Role
from runtime.http.json_bodies import DuplicateMember, loads_unique

ALGORITHM = "ES256"
AUDIENCE = "strata"
MAX_TOKEN_BYTES = 8 * 1024
KNOWN_ROLES = frozenset(Role)
VERIFIED_TOKENS_KEPT = 4096
LAST_INSTANT = 253_402_300_799
"""9999-12-31T23:59:59Z, the last second a `datetime` holds: the latest NumericDate accepted."""
TIME_CLAIMS = ("exp", "nbf", "iat")


class InvalidToken(Exception):
    """A token that proves nothing: a 401."""


@dataclass(frozen=True)
class _Signed:
    """A token whose signature verified under `key`, and its (not yet validated) claims."""

    kid: str
    key: ECKey
    claims: dict[str, Any]


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        issuer: str,
        *,
        audience: str = AUDIENCE,
        leeway: int = 30,
        now: Callable[[], float] = time.time,
        remember: int = VERIFIED_TOKENS_KEPT,
    ) -> None:
        self._keys = keys
        self._now = now
        self._signed: OrderedDict[str, _Signed] = OrderedDict()
        self._remember = remember
        self.signature_checks = 0
        """Signatures verified so far (the others were remembered)."""
        self._claims = jwt.JWTClaimsRegistry(
            now=lambda: int(self._now()),
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    async def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("the token is too long")
        signed = self._signed.get(token)
        if signed is not None and await self._keys.key(signed.kid) is signed.key:
            self._signed.move_to_end(token)
        else:
            signed = await self._check_signature(token)
            self._keep(token, signed)
        try:
            self._claims.validate(signed.claims)
        except JoseError as error:
            raise InvalidToken(_reason(error)) from None
        return principal_of(signed.claims)

    def _keep(self, token: str, signed: _Signed) -> None:
        self._signed[token] = signed
        self._signed.move_to_end(token)
        while len(self._signed) > self._remember:
            self._signed.popitem(last=False)

    async def _check_signature(self, token: str) -> _Signed:
        header = _header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"the token's alg must be {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no kid")
        key = await self._keys.key(kid)
        if key is None:
            raise InvalidToken(f"the token's kid {kid!r} is not a key of the identity service")
        self.signature_checks += 1
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM]).claims
        except JoseError as error:
            raise InvalidToken(_reason(error)) from None
        _refuse_repeated_members(token)
        _refuse_impossible_instants(claims)
        return _Signed(kid, key, claims)


def _header(token: str) -> dict[str, Any]:
    if not token.isascii():
        raise InvalidToken("the token is not a compact JWS: it holds characters outside ASCII")
    try:
        return dict(jws.extract_compact(token.encode("ascii")).protected)
    except (JoseError, ValueError) as error:
        raise InvalidToken(f"the token is not a compact JWS: {_reason(error)}") from None


def _refuse_repeated_members(token: str) -> None:
    """A signed token's header and claims are JSON already decoded once: scan them again for a
    repeated member name."""
    for part, name in zip(token.split(".")[:2], ("header", "claims"), strict=True):
        try:
            loads_unique(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except DuplicateMember as error:
            raise InvalidToken(f"the token's {name} names {error.path[-1]!r} twice") from None


def _refuse_impossible_instants(claims: dict[str, Any]) -> None:
    for name in TIME_CLAIMS:
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidToken(f"the token's {name} must be a number of seconds since 1970")
        if not 0 <= value <= LAST_INSTANT:
            shown = repr(value) if len(repr(value)) <= 24 else f"{repr(value)[:20]}…"
            raise InvalidToken(f"the token's {name} {shown} is not an instant before year 10000")


def _reason(error: Exception) -> str:
    """joserfc's description, else its error code in words ("bad_signature: " -> "bad
    signature")."""
    text = getattr(error, "description", None) or str(error).rstrip(": ").replace("_", " ")
    return text or type(error).__name__


def principal_of(claims: dict[str, Any]) -> Principal:
    """The principal of verified claims: `sub`, `roles` (unknown ones are ignored) and the
    space-separated `scope`."""
    subject = claims["sub"]
    roles = claims.get("roles", [])
    scope = claims.get("scope", "")
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("the token's sub must be a non-empty string")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise InvalidToken("the token's roles must be a list of strings")
    if not isinstance(scope, str):
        raise InvalidToken("the token's scope must be a space-separated string")
    known = frozenset(Role(role) for role in roles if role in KNOWN_ROLES)
    return Principal(subject, known, frozenset(scope.split()))
