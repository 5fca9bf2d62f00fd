"""Who calls a BFF: the `Principal` of its verified bearer token, with the header to forward.

A BFF checks the token itself, as every service does (`runtime.auth`: signature against the
identity's JWKS, issuer, audience, expiry), then forwards the same `Authorization` header to the
read API, which checks it again. Its rate limits count against the verified subject only
(`runtime.rate_limits.by_subject`): a forged token naming another user costs that user nothing
(it counts against its sender's address, and is refused with a 401).
"""

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from domain.values import CANONICAL_UUID
from runtime.auth.http import Caller as Verified
from runtime.auth.policy import Forbidden
from runtime.auth.principal import Principal as VerifiedPrincipal
from runtime.auth.principal import Role


@dataclass(frozen=True)
class Principal:
    verified: VerifiedPrincipal
    authorization: str
    """The `Authorization` header to forward (empty in the insecure mode)."""

    @property
    def subject(self) -> str:
        return self.verified.subject

    @property
    def operator(self) -> bool:
        return self.verified.has(Role.OPERATOR)

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
        return self.operator or self.verified.is_subject(owner)


async def caller(request: Request, verified: Verified) -> Principal:
    """The verified caller of a BFF route, and the header the BFF forwards for it."""
    return Principal(verified, request.headers.get("authorization", ""))


Caller = Annotated[Principal, Depends(caller)]
