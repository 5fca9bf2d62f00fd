"""The FastAPI side of authentication: who calls (`Caller`), and 401/403/503 as problem details.

`install_auth(app, authenticator)` puts the process's `Authenticator` on the app and answers
`Unauthenticated` with a 401 (`WWW-Authenticate: Bearer …`, RFC 6750 §3), `Forbidden` with
a 403, and `KeysUnavailable` (the identity's keys cannot be fetched to check the token) with a
503 `service-unavailable` and `Retry-After`: the token may be good, so it is not refused. An
endpoint takes `caller: Caller` and asks `runtime.auth.policy.require(caller, …)`; the routes
that take no `Caller` (/healthz, /readyz, /metrics, /docs, /openapi.json) stay open. The token
is verified before the body is read (`runtime.http.before_body`): a caller without a valid one
gets its 401 whatever it sent.
"""

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Gauge

from runtime.auth.jwks import JwksCache, KeySource, KeysUnavailable
from runtime.auth.policy import Forbidden
from runtime.auth.principal import INSECURE_OPERATOR, Principal
from runtime.auth.settings import AuthSettings
from runtime.auth.verifier import InvalidToken, TokenVerifier
from runtime.http.before_body import before_body
from runtime.http.header_fields import MalformedField, bearer_token, one_authorization
from runtime.http.lean_route import served_lean_by
from runtime.http.problem_types import FORBIDDEN, UNAUTHENTICATED
from runtime.http.problems import problem, unavailable

log = logging.getLogger("strata.auth")
REALM = "strata"


class Unauthenticated(Exception):
    """No token, or one that proves nothing: a 401."""

    def __init__(self, reason: str, *, token_sent: bool, error: str = "invalid_token") -> None:
        super().__init__(reason)
        self.token_sent = token_sent
        self.error = error
        """The RFC 6750 §3.1 error code: `invalid_token`, or `invalid_request` for a request
        that carries its credentials ambiguously."""

    @property
    def challenge(self) -> str:
        if not self.token_sent:  # RFC 6750 §3.1: no error code when no credentials were sent
            return f'Bearer realm="{REALM}"'
        description = _challenge_text(str(self))
        return f'Bearer realm="{REALM}", error="{self.error}", error_description="{description}"'


def _challenge_text(reason: str) -> str:
    """`reason` as RFC 6750 §3 lets `error_description` be (%x20-21 / %x23-5B / %x5D-7E):
    `"` becomes `'`, `\\` and every character outside visible ASCII and space become `?`. The
    reason may quote what the token says (a `kid`, a claim), which no one checked yet: a
    character a header cannot carry would otherwise fail the answer (a 500, not the 401); the
    problem's `detail` keeps the reason whole."""
    quoted = reason.replace('"', "'")
    return "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in quoted)


class Authenticator:
    """The principal of a request's bearer token; `verifier=None` is the insecure mode."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self.verifier = verifier

    @property
    def insecure(self) -> bool:
        return self.verifier is None

    async def principal(self, token: str | None) -> Principal:
        if self.verifier is None:
            return INSECURE_OPERATOR
        if token is None:
            raise Unauthenticated("this endpoint needs a bearer token", token_sent=False)
        try:
            return await self.verifier.verify(token)
        except InvalidToken as error:
            raise Unauthenticated(str(error), token_sent=True) from None


def authenticator(settings: AuthSettings, keys: KeySource | None = None) -> Authenticator:
    """The authenticator the settings ask for; `keys` replaces the JWKS of the settings (the
    embedded default's development key). Builds no connection: the JWKS is fetched on the
    first token."""
    if settings.auth == "insecure":
        return Authenticator(None)
    if keys is None:
        keys = JwksCache(
            settings.effective_jwks_url(),
            min_interval=settings.jwks_refetch_seconds,
            max_age=settings.jwks_max_age_seconds,
        )
    verifier = TokenVerifier(keys, settings.identity_issuer, leeway=settings.token_leeway_seconds)
    return Authenticator(verifier)


_bearer = HTTPBearer(
    auto_error=False,
    description="An access token of the identity service (ES256 JWT).",
)


PRINCIPAL = "strata.principal"
"""Where a request's verified principal is kept: its key in the request's state dict."""


async def verified_principal(request: Request) -> Principal:
    """The principal of the request's bearer token, verified once per request (a rate limit
    and the endpoint may both ask); `Unauthenticated` if it proves nothing, also kept, so a
    forged token costs one verification too, and so is `KeysUnavailable`."""
    state: dict[str, Any] = request.scope.setdefault("state", {})
    known: Principal | Unauthenticated | KeysUnavailable | None = state.get(PRINCIPAL)
    if isinstance(known, Unauthenticated | KeysUnavailable):
        raise known
    if known is not None:
        return known
    try:
        principal = await _principal(request)
    except (Unauthenticated, KeysUnavailable) as refusal:
        state[PRINCIPAL] = refusal
        raise
    state[PRINCIPAL] = principal
    return principal


async def _principal(request: Request) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator
    try:
        authorization = one_authorization(request.headers.getlist("authorization"))
    except MalformedField as error:
        raise Unauthenticated(str(error), token_sent=True, error="invalid_request") from None
    return await authenticator.principal(bearer_token(authorization))


def principal_of(request: Request) -> Principal | None:
    """The principal `verified_principal` found for this request, if it was asked already."""
    state: dict[str, Any] = request.scope.get("state") or {}
    known = state.get(PRINCIPAL)
    return known if isinstance(known, Principal) else None


@before_body(verified_principal)
@served_lean_by(verified_principal)
async def caller(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """`_` declares the bearer scheme in the OpenAPI document; the token is read from the
    request as the lean route reads it, so both answer alike."""
    return await verified_principal(request)


Caller = Annotated[Principal, Depends(caller)]
"""An endpoint's parameter `caller: Caller` is the verified principal of the request."""


async def _on_unauthenticated(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Unauthenticated)
    headers = {"WWW-Authenticate": error.challenge}
    return problem(request, UNAUTHENTICATED, str(error), headers=headers)


async def _on_forbidden(request: Request, error: Exception) -> JSONResponse:
    return problem(request, FORBIDDEN, str(error))


async def _on_keys_unavailable(request: Request, error: Exception) -> JSONResponse:
    return unavailable(request, f"the token cannot be checked now: {error}")


def install_auth(app: FastAPI, authenticator: Authenticator) -> None:
    """Authenticate the requests of `app` with `authenticator`; warns loudly when insecure."""
    app.state.authenticator = authenticator
    app.add_exception_handler(Unauthenticated, _on_unauthenticated)
    app.add_exception_handler(Forbidden, _on_forbidden)
    app.add_exception_handler(KeysUnavailable, _on_keys_unavailable)
    if authenticator.insecure:
        log.warning(
            "STRATA_AUTH=insecure: %s authenticates NO request; every caller acts as an"
            " operator. Never run this where anyone else can reach it.",
            app.title,
        )


def register_auth_mode(registry: CollectorRegistry, insecure: bool) -> None:
    """`strata_auth_insecure` on /metrics: 1 while requests go unauthenticated."""
    gauge = Gauge(
        "strata_auth_insecure",
        "1 when this process authenticates no request (STRATA_AUTH=insecure), else 0.",
        registry=registry,
    )
    gauge.set(1 if insecure else 0)
