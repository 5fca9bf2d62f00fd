"""The identity service's settings: the common ones, and its own `STRATA_IDENTITY_*` fields."""

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from runtime.live_field import LIVE
from runtime.rate_limit_settings import RouteLimits
from runtime.setting_values import PostgresUrl
from runtime.settings import CommonSettings

Role = Literal["operator", "service"]
PasswordProfile = Literal["RFC_9106_LOW_MEMORY", "RFC_9106_HIGH_MEMORY", "CHEAPEST"]
ClientId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
SCOPE_PATTERN = r"^([a-z]+:(read|write)( [a-z]+:(read|write))*)?$"
Scope = Annotated[str, StringConstraints(pattern=SCOPE_PATTERN)]
IDENTITY_ROUTE_LIMITS = {"POST /sign-up": "5/minute;50/hour", "POST /password": "5/minute;30/hour"}
"""Per address (sign-up) or per user (password change); `POST /token` has the default, per
address, and each account its sign-in throttle (identity/throttle.py)."""


class BootstrapClient(BaseModel):
    """A client created at the first start, with the secret given (scripts and compose hand the
    same secret to the process that uses it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: ClientId
    role: Role
    scope: Scope = ""
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)]


class IdentitySettings(CommonSettings):
    """`STRATA_IDENTITY_DATABASE_URL` unset: the embedded mode, a SQLite file in the data dir."""

    identity_database_url: PostgresUrl | None = Field(
        None, description="Stack mode: PostgreSQL URL of the identity database."
    )
    identity_host: str = Field("127.0.0.1", description="Address the identity service listens on.")
    identity_port: int = Field(
        8200, ge=1, le=65535, description="Port the identity service listens on."
    )
    identity_issuer: str = Field(
        "http://127.0.0.1:8200",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="The `iss` of every token, and the base of the discovery document's URLs.",
    )
    identity_access_token_seconds: int = Field(
        300, ge=30, le=3600, description="Seconds an access token is valid."
    )
    identity_refresh_token_seconds: int = Field(
        7 * 24 * 3600, ge=60, description="Seconds a refresh token is valid (each use rotates it)."
    )
    identity_key_publish_ahead_seconds: int = Field(
        0,
        ge=0,
        le=3600,
        description="Seconds a rotated signing key is published in the JWKS before it signs, so"
        " verifiers that cache the JWKS (Envoy) learn it first.",
    )
    identity_jwks_max_age_seconds: int = Field(
        60, ge=0, le=3600, description="`Cache-Control: max-age` of the JWKS and discovery."
    )
    identity_password_profile: PasswordProfile = Field(
        "RFC_9106_LOW_MEMORY",
        description="argon2-cffi's parameter profile of new password hashes (older hashes are"
        " rehashed at the next sign-in); CHEAPEST is for tests only.",
    )
    identity_sign_in_max_failures: int = Field(
        5,
        ge=1,
        le=100,
        description="Password sign-ins of one account without a success that lock its password"
        " grant (429) for a backoff.",
    )
    identity_sign_in_lockout_seconds: int = Field(
        30, ge=1, le=3600, description="The first lockout; each next one in a series doubles."
    )
    identity_sign_in_max_lockout_seconds: int = Field(
        900, ge=1, le=86400, description="The longest lockout of an account's password grant."
    )
    identity_sign_in_quiet_seconds: int = Field(
        900,
        ge=1,
        le=86400,
        description="Without a sign-in attempt this long, an account's count and backoff start"
        " over.",
    )
    rate_limit_routes: RouteLimits = Field(
        default_factory=lambda: dict(IDENTITY_ROUTE_LIMITS),
        description="Limits of particular routes instead of the default, as JSON (method, space,"
        " the route's path template); identity's own: " + json.dumps(IDENTITY_ROUTE_LIMITS) + ".",
        json_schema_extra=LIVE,
    )
    identity_bootstrap_clients: SecretStr = Field(
        SecretStr("[]"),
        description="JSON list of clients created at start when missing:"
        ' `[{"client_id": "fulfilment", "role": "service", "scope": "payments:write",'
        ' "secret": "..."}]`.',
    )

    def database_urls(self) -> dict[str, str | None]:
        """Identity serves no context's event store."""
        return {}

    @property
    def identity_mode(self) -> Literal["embedded", "stack"]:
        return "embedded" if self.identity_database_url is None else "stack"

    @field_validator("identity_bootstrap_clients")
    @classmethod
    def _bootstrap_clients_parse(cls, value: SecretStr) -> SecretStr:
        parse_bootstrap_clients(value.get_secret_value())
        return value

    def bootstrap_clients(self) -> list[BootstrapClient]:
        return parse_bootstrap_clients(self.identity_bootstrap_clients.get_secret_value())


def parse_bootstrap_clients(text: str) -> list[BootstrapClient]:
    """The clients of `STRATA_IDENTITY_BOOTSTRAP_CLIENTS`; a ValueError names what is wrong."""
    try:
        entries: Any = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error.msg} at {error.pos}") from None
    if not isinstance(entries, list):
        raise ValueError("must be a JSON list of clients")
    clients = [BootstrapClient.model_validate(entry) for entry in entries]
    if len({c.client_id for c in clients}) != len(clients):
        raise ValueError("a client_id appears twice")
    return clients
