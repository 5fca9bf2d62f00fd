"""What every bench needs to get past the services' edge: tokens of the test identity
(tests/support/auth.py), a JWKS server the services trust, and rate limits set so high that
the bench's own clients are never throttled (the check still runs on every request)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.auth import IDENTITY, JwksServer

UNTHROTTLED_DEFAULT = "100000000/minute"


def client_tokens(clients: int) -> list[str]:
    """One operator token per client, as each client of the service would hold its own; the
    services verify every request's token (ES256) as in production."""
    return [IDENTITY.token(f"bench-client-{i}", seconds=3600) for i in range(clients)]


def setup_token() -> str:
    return IDENTITY.token("bench-setup", seconds=3600)


def authorization(token: str) -> str:
    """The header line (CRLF-terminated) for loadgen's raw requests."""
    return f"Authorization: Bearer {token}\r\n"


def unthrottled(env: dict[str, str]) -> dict[str, str]:
    """The rate-limit settings for a bench's services: `env`'s own, or a ceiling no bench
    reaches."""
    return {
        "STRATA_RATE_LIMIT_DEFAULT": env.get("STRATA_RATE_LIMIT_DEFAULT", UNTHROTTLED_DEFAULT),
        "STRATA_RATE_LIMIT_ROLES": env.get("STRATA_RATE_LIMIT_ROLES", "{}"),
    }


@contextmanager
def trusted_identity() -> Iterator[str]:
    """Serves the test identity's JWKS; yields the URL for the services' `STRATA_JWKS_URL`."""
    with JwksServer(IDENTITY.key).serving() as server:
        yield server.url
