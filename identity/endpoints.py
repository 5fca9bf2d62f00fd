"""Identity's HTTP endpoints: sign-up, accounts, the token endpoint, password change and key
rotation (the discovery documents are `identity.discovery`). Every one is rate limited per
caller and route (runtime/rate_limits.py)."""

import base64
import binascii
import uuid
from collections.abc import Callable
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from identity.accounts import AccountExists, sign_up_fingerprint
from identity.callers import Operator, SignedInUser
from identity.forms import MalformedForm, parse_form, required
from identity.grants import InvalidClient, InvalidGrant, TokenAnswer
from identity.problems import UnsupportedGrantType
from identity.schemas import (
    FORM_BODY,
    Account,
    AccountRequest,
    PasswordChange,
    PasswordChanged,
    RotatedKey,
    SignUpRequest,
    TokenResponse,
)
from identity.service import Identity, identity_of, run
from identity.throttle import SignInThrottled
from runtime.http import header_fields
from runtime.http.header_fields import MalformedField, one_authorization
from runtime.http.json_bodies import JsonRoute
from runtime.rate_limits import RateLimitedRoute

GrantCall = Callable[[], TokenAnswer]


class IdentityRoute(RateLimitedRoute, JsonRoute):
    """Rate limited, and a JSON body with a repeated member name is refused."""


router = APIRouter(route_class=IdentityRoute)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _sign_up_key(value: str | None) -> str:
    if value is None:
        return str(uuid.uuid4())  # no retry safety asked for
    try:
        header_fields.idempotency_key(value)
    except MalformedField as error:
        raise HTTPException(400, str(error)) from None
    return value


@router.post(
    "/sign-up",
    status_code=201,
    response_model=Account,
    tags=["accounts"],
)
async def sign_up(
    body: SignUpRequest,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Create a user profile (through the users service) and the account to sign in with.
    Retrying with the same `Idempotency-Key` creates nothing more and answers the same."""
    identity = identity_of(request)
    key = _sign_up_key(idempotency_key)
    fingerprint = sign_up_fingerprint(body.name, body.email)
    accounts = identity.accounts

    def earlier() -> str | None:
        return accounts.earlier_sign_up(key, fingerprint, body.password)

    user_id = await run(request, earlier)
    if user_id is not None:
        return _signed_up(user_id, body.email, replayed=True)
    if await run(request, lambda: accounts.has_account(body.email)):
        raise AccountExists(f"the address {body.email!r} has an account already")
    password_hash = await run(request, lambda: accounts.hash_password(body.password))
    user_id = await identity.profiles.register(body.name, body.email, key)
    try:
        await run(
            request,
            lambda: accounts.complete_sign_up(key, fingerprint, user_id, body.email, password_hash),
        )
    except AccountExists:  # a retry with this key may have finished first
        if await run(request, earlier) != user_id:
            raise
        return _signed_up(user_id, body.email, replayed=True)
    return _signed_up(user_id, body.email, replayed=False)


def _signed_up(user_id: str, email: str, *, replayed: bool) -> JSONResponse:
    headers = {"Location": f"/users/{user_id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse({"user_id": user_id, "email": email}, status_code=201, headers=headers)


@router.post(
    "/accounts",
    status_code=201,
    response_model=Account,
    tags=["accounts"],
)
async def attach_account(body: AccountRequest, request: Request, _: Operator) -> Account:
    """An operator gives an existing profile an account; its address is the profile's."""
    identity = identity_of(request)
    email = await identity.profiles.email_of(body.user_id)
    password_hash = await run(request, lambda: identity.accounts.hash_password(body.password))
    await run(request, lambda: identity.accounts.attach(body.user_id, email, password_hash))
    return Account(user_id=body.user_id, email=email)


@router.post(
    "/token",
    response_model=TokenResponse,
    tags=["tokens"],
    openapi_extra=FORM_BODY,
)
async def token(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """The OAuth 2.0 token endpoint (RFC 6749), form-encoded: `grant_type` `password`
    (`username` is the email), `refresh_token`, or `client_credentials` (the client's id and
    secret in the form or in HTTP Basic)."""
    del authorization  # declared for the OpenAPI document; read below with its repetitions
    try:
        basic = one_authorization(request.headers.getlist("authorization"))
    except MalformedField as error:
        raise MalformedForm(str(error)) from None
    form = parse_form(await request.body())
    identity = identity_of(request)
    call = _grant(identity, form, basic)
    try:
        answer = await run(request, call)
    except (InvalidGrant, InvalidClient):
        identity.metrics.tokens.labels(form["grant_type"], "refused").inc()
        raise
    except SignInThrottled:
        identity.metrics.tokens.labels(form["grant_type"], "throttled").inc()
        raise
    identity.metrics.tokens.labels(form["grant_type"], "issued").inc()
    return JSONResponse(answer.body(), headers=NO_STORE)


def _grant(identity: Identity, form: dict[str, str], authorization: str | None) -> GrantCall:
    (grant_type,) = required(form, "grant_type")
    grants = identity.grants
    if grant_type == "password":
        username, password = required(form, "username", "password")
        return lambda: grants.password(username, password)
    if grant_type == "refresh_token":
        (refresh_token,) = required(form, "refresh_token")
        return lambda: grants.refresh(refresh_token)
    if grant_type == "client_credentials":
        client_id, secret = _client_credentials(form, authorization)
        return lambda: grants.client_credentials(client_id, secret)
    raise UnsupportedGrantType(f"grant_type {grant_type[:40]!r} is not supported")


def _client_credentials(form: dict[str, str], authorization: str | None) -> tuple[str, str]:
    """From HTTP Basic (RFC 6749 §2.3.1, each part form-encoded) or else from the form, never
    both: a client uses one way of authenticating per request (§2.3)."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        client_id, secret = required(form, "client_id", "client_secret")
        return client_id, secret
    if given := [name for name in ("client_id", "client_secret") if name in form]:
        raise MalformedForm(
            f"the client authenticates with Basic credentials: the form must not hold {given[0]}"
        )
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedForm("the Basic credentials are not base64 of UTF-8") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise MalformedForm("the Basic credentials have no ':'")
    return unquote(client_id), unquote(secret)


@router.post("/password", response_model=PasswordChanged, tags=["accounts"])
async def change_password(
    body: PasswordChange, request: Request, user: SignedInUser
) -> PasswordChanged:
    """The signed-in user's new password, given their current one. Every refresh token of the
    user is revoked: each session signs in again (access tokens already issued stay valid until
    they expire). Wrong current passwords count against the account's sign-in throttle."""
    accounts = identity_of(request).accounts

    def change() -> int:
        return accounts.change_password(user.subject, body.current_password, body.new_password)

    return PasswordChanged(signed_out=await run(request, change))


@router.post(
    "/keys/rotate",
    status_code=201,
    response_model=RotatedKey,
    tags=["keys"],
)
async def rotate_keys(request: Request, _: Operator) -> RotatedKey:
    """A new signing key. The previous one stays in the JWKS until its tokens have expired."""
    key = await run(request, identity_of(request).issuer.rotate)
    return RotatedKey(kid=key.kid, active_from=key.active_from)
