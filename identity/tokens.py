"""Access tokens: JWS ES256 with a `kid`, and the claims every strata service reads.

Claims (docs/identity.md): `iss`, `aud` ("strata"), `sub` (a user's profile id, or a client's
id), `iat`, `exp`, `jti`, `roles` (a list of "user", "operator", "service") and `scope` (the
space-separated scopes of a service account; empty otherwise).
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from identity.keys import ALGORITHM

AUDIENCE = "strata"
ROLES = ("user", "operator", "service")


@dataclass(frozen=True)
class Grant:
    """Who a token speaks for and what it may do."""

    subject: str
    roles: tuple[str, ...]
    scope: str = ""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


class InvalidToken(Exception):
    """A token that is malformed, forged, expired, or not for this issuer and audience."""


def mint(grant: Grant, key: ECKey, issuer: str, now: int, lifetime: int) -> IssuedToken:
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": grant.subject,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        "roles": list(grant.roles),
        "scope": grant.scope,
    }
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}
    return IssuedToken(jwt.encode(header, claims, key), lifetime)


def verify(token: str, keys: Sequence[ECKey], issuer: str, now: int, leeway: int = 0) -> Grant:
    """The grant of a valid token signed by one of `keys` (chosen by `kid`)."""
    try:
        decoded = jwt.decode(token, KeySet(list(keys)), algorithms=[ALGORITHM])
        registry = jwt.JWTClaimsRegistry(
            now=now,
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": AUDIENCE},
            sub={"essential": True},
            exp={"essential": True},
        )
        registry.validate(decoded.claims)
    except (JoseError, ValueError) as error:
        raise InvalidToken(str(error) or type(error).__name__) from None
    return _grant(decoded.claims)


def _grant(claims: dict[str, Any]) -> Grant:
    roles, scope = claims.get("roles"), claims.get("scope", "")
    if not isinstance(roles, list) or not all(role in ROLES for role in roles):
        raise InvalidToken("roles must be a list of user, operator, service")
    if not isinstance(scope, str):
        raise InvalidToken("scope must be a string")
    return Grant(str(claims["sub"]), tuple(roles), scope)
