"""Who calls identity: the grant of a bearer token identity issued itself (verified once per
request), the dependencies of the operator's and the signed-in user's endpoints, and whom a
request counts against for the rate limits. The token is verified before the body is read
(`runtime.http.before_body`): without a valid one, the answer is a 401 whatever the body."""

from typing import Annotated

from fastapi import Depends, Header, Request

from identity.problems import NotAllowed, NotAuthenticated
from identity.service import identity_of, run
from identity.tokens import Grant, InvalidToken
from runtime.http.before_body import before_body
from runtime.http.header_fields import MalformedField, bearer_token, one_authorization
from runtime.rate_limits import PRIVILEGED, Counted, client_address


async def bearer_grant(request: Request) -> Grant:
    """The grant of the request's bearer token; `NotAuthenticated` if there is none or it is not
    valid. Kept on the request: the rate limit and the endpoint both ask."""
    known: Grant | None = getattr(request.state, "grant", None)
    if known is not None:
        return known
    try:
        token = bearer_token(one_authorization(request.headers.getlist("authorization")))
    except MalformedField as error:
        raise NotAuthenticated(str(error)) from None
    if token is None:
        raise NotAuthenticated("send an access token: Authorization: Bearer <token>")
    identity = identity_of(request)
    try:
        grant = await run(request, lambda: identity.issuer.verify(token))
    except InvalidToken as error:
        raise NotAuthenticated(f"the bearer token is not valid: {error}") from None
    request.state.grant = grant
    return grant


@before_body(bearer_grant)
async def operator(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Grant:
    """The bearer token's grant, which must hold the operator role."""
    grant = await bearer_grant(request)
    if "operator" not in grant.roles:
        raise NotAllowed("only an operator may do this")
    return grant


@before_body(bearer_grant)
async def signed_in_user(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Grant:
    """The bearer token's grant, which must be a user's (the role that has a password)."""
    grant = await bearer_grant(request)
    if "user" not in grant.roles:
        raise NotAllowed("only a signed-in user has a password to change")
    return grant


Operator = Annotated[Grant, Depends(operator)]
SignedInUser = Annotated[Grant, Depends(signed_in_user)]


async def rate_limit_caller(request: Request) -> Counted:
    """A request with a valid token counts against its subject (with its role's limits, for an
    operator or a service); any other against its address."""
    if "authorization" not in request.headers:
        return Counted(client_address(request))
    try:
        grant = await bearer_grant(request)
    except NotAuthenticated:
        return Counted(client_address(request))
    role = next((role.value for role in PRIVILEGED if role.value in grant.roles), None)
    return Counted(f"sub:{grant.subject}", role)
