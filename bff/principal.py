"""Who calls a BFF: the `Principal` named by the bearer token, for routing only.

The seam: a BFF does not verify the token, it reads the claims it routes by (`sub`, `roles`)
and forwards the `Authorization` header to the read API, which verifies it (and so does the
gateway before it). A garbled or missing token is a 401 here; a forged one passes this
dependency and is refused downstream, whose 401 the BFF relays. When the runtime's verifier
lands, `caller` becomes that verifier's dependency and nothing else changes (docs/bff.md).
"""

import json
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from joserfc.errors import JoseError
from joserfc.jws import extract_compact

from domain.values import CANONICAL_UUID
from runtime.rate_limits import client_address

OPERATOR = "operator"

bearer = HTTPBearer(
    auto_error=False,
    description="An access token of the identity service (ES256 JWT); forwarded downstream.",
)


class Unauthenticated(Exception):
    """A bearer token whose claims cannot be read: 401."""

    challenge = 'Bearer error="invalid_token"'
    """The `WWW-Authenticate` header of the answer (RFC 6750)."""


class NoToken(Unauthenticated):
    """No bearer token at all: 401."""

    challenge = "Bearer"


class Forbidden(Exception):
    """The caller may not see what it asked for: 403."""


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]
    authorization: str
    """The `Authorization` header to forward."""

    @property
    def operator(self) -> bool:
        return OPERATOR in self.roles

    def user_id(self, asked: UUID | None = None) -> UUID:
        """The user whose data this caller reads: its own, or `asked` (its own, or any user
        for an operator)."""
        own = UUID(self.subject) if CANONICAL_UUID.fullmatch(self.subject) else None
        if asked is not None and (asked == own or self.operator):
            return asked
        if asked is not None:
            raise Forbidden("only an operator may read another user's data")
        if own is None:
            raise Forbidden("the token's subject is not a user: pass user_id (operators)")
        return own

    def may_read(self, owner: UUID) -> bool:
        return self.operator or self.subject == str(owner)


def claims(token: str) -> dict[str, Any]:
    """The claims of a compact JWS, unverified; `Unauthenticated` if it is not one."""
    try:
        payload = json.loads(extract_compact(token.encode("ascii")).payload)
    except (JoseError, ValueError, UnicodeError) as error:
        raise Unauthenticated(f"the bearer token is not a readable JWT: {error}") from None
    if not isinstance(payload, dict):
        raise Unauthenticated("the bearer token's claims are not a JSON object")
    return payload


def principal_of(credentials: HTTPAuthorizationCredentials) -> Principal:
    found = claims(credentials.credentials)
    subject, roles = found.get("sub"), found.get("roles", [])
    if not isinstance(subject, str) or not subject:
        raise Unauthenticated("the bearer token has no `sub` claim")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise Unauthenticated("the bearer token's `roles` claim is not a list of names")
    authorization = f"Bearer {credentials.credentials}"
    return Principal(subject, frozenset(roles), authorization)


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller of a BFF route (the seam to swap for the verifier's dependency)."""
    if credentials is None:
        raise NoToken("send `Authorization: Bearer <access token>`")
    principal = principal_of(credentials)
    request.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(caller)]


def rate_limit_key(request: Request) -> str:
    """Whom a request counts against: its token's subject, else its address. Unverified, like
    the rest of the seam: behind the gateway every token that gets here was verified."""
    credentials = request.headers.get("authorization", "")
    scheme, _, token = credentials.partition(" ")
    if scheme.lower() == "bearer" and token:
        try:
            subject = claims(token).get("sub")
        except Unauthenticated:
            subject = None
        if isinstance(subject, str) and subject:
            return f"sub:{subject}"
    return client_address(request)
