"""What verifiers read: the OpenID Connect discovery document and the JWKS, both cacheable."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from identity.keys import ALGORITHM
from identity.service import identity_of, run
from runtime.rate_limits import RateLimitedRoute

router = APIRouter(tags=["discovery"], route_class=RateLimitedRoute)
JWKS_PATH = "/jwks.json"
TOKEN_PATH = "/token"  # noqa: S105 - a path, not a secret


def _cached(request: Request, body: dict[str, Any]) -> JSONResponse:
    max_age = identity_of(request).settings.identity_jwks_max_age_seconds
    return JSONResponse(body, headers={"Cache-Control": f"public, max-age={max_age}"})


@router.get("/.well-known/openid-configuration")
async def openid_configuration(request: Request) -> JSONResponse:
    """Where the issuer's keys and token endpoint are (OpenID Connect Discovery 1.0)."""
    issuer = identity_of(request).settings.identity_issuer.rstrip("/")
    return _cached(
        request,
        {
            "issuer": issuer,
            "jwks_uri": issuer + JWKS_PATH,
            "token_endpoint": issuer + TOKEN_PATH,
            "grant_types_supported": ["password", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "claims_supported": ["iss", "aud", "sub", "iat", "exp", "jti", "roles", "scope"],
        },
    )


@router.get(JWKS_PATH)
async def jwks(request: Request) -> JSONResponse:
    """The public keys of every token that may still be valid, and of the next key if a
    rotation published it ahead of its use."""
    return _cached(request, await run(request, identity_of(request).issuer.jwks))
