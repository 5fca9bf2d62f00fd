"""The authentication settings, part of every process's settings (`runtime.settings`)."""

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from runtime.setting_values import HttpUrlText

AuthMode = Literal["jwt", "insecure"]


class AuthSettings(BaseSettings):
    auth: AuthMode = Field(
        "jwt",
        description="`jwt`: every request needs a token of the identity service. `insecure`"
        " (explicit, never a default): no checks at all, every caller acts as an operator; the"
        " process warns at start and says so in /readyz and /metrics.",
    )
    identity_issuer: str = Field(
        "http://127.0.0.1:8200",
        description="The identity service: the `iss` every token must carry.",
    )
    jwks_url: HttpUrlText | None = Field(
        None,
        description="Where the identity's public keys are (default: the issuer +"
        " `/jwks.json`). `strata` (embedded) without it trusts its development key instead.",
    )
    jwks_refetch_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="A token with an unknown `kid` refetches the JWKS at most this often after"
        " a fetch that succeeded (after one that failed: a second later).",
    )
    jwks_max_age_seconds: float = Field(
        300.0, gt=0, description="Age after which the JWKS is refreshed in the background."
    )
    token_leeway_seconds: int = Field(
        30, ge=0, le=300, description="Clock skew allowed when checking `exp`, `nbf` and `iat`."
    )
    service_token_url: HttpUrlText | None = Field(
        None,
        description="Token endpoint for this process's own service token (client credentials;"
        " default: the issuer's discovery document).",
    )
    service_client_id: str | None = Field(
        None,
        description="Client id of this process's service account (the fulfilment saga's calls"
        " to other services); without it those calls carry no token.",
    )
    service_client_secret: SecretStr | None = Field(
        None, description="Secret of `STRATA_SERVICE_CLIENT_ID`."
    )

    def effective_jwks_url(self) -> str:
        return self.jwks_url or self.identity_issuer.rstrip("/") + "/jwks.json"
