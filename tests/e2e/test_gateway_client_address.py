"""The client's address behind a real Envoy and a real identity service: the gateway is its only
source. Whatever `X-Forwarded-For` a client sends, the service counts its per-address limit
(sign-ups) against the address Envoy took the connection from, as the access log names it.

Identity believes `X-Forwarded-For` from any peer here (`FORWARDED_ALLOW_IPS=*`), as a service
believes it from its gateway, wherever that runs: what it counts is then exactly what the gateway
forwards. Had Envoy appended its hop to the client's header (for a loopback peer, its own
address: 127.0.0.1 on a host with no other interface, which the services' default
`FORWARDED_ALLOW_IPS` trusts), the service would read the client's value past it, and each
spoofed address would have a limit of its own."""

from collections.abc import Iterator

import httpx
import pytest

from gateway.filters import TokenBucket
from tests.support.gateway import RunningGateway, loopback_gateway, running_gateway
from tests.support.processes import entry_point, running_service

SIGN_UPS = 3
"""Sign-ups an address may attempt in a minute: the test's fourth is refused."""
AMPLE = TokenBucket(max_tokens=100_000, tokens_per_fill=100_000, fill_seconds=1)
SPOOFED = [
    [("X-Forwarded-For", "203.0.113.1")],
    [("X-Forwarded-For", "203.0.113.2, 198.51.100.2")],
    [("X-Forwarded-For", "203.0.113.3"), ("X-Forwarded-For", "198.51.100.3")],
    [("X-Forwarded-For", "203.0.113.4")],
    [("X-Forwarded-For", "unknown")],
]
"""One address, a chain of proxies, the header twice: each a caller the client pretends to be."""


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    env = {
        "STRATA_DATA_DIR": str(tmp_path_factory.mktemp("identity")),
        "FORWARDED_ALLOW_IPS": "*",
        "STRATA_RATE_LIMIT_ROUTES": f'{{"POST /sign-up": "{SIGN_UPS}/minute"}}',
    }
    identity = entry_point("strata-identity")
    with running_service(identity, env, "STRATA_IDENTITY_PORT", args=["serve"]) as (base, _):
        gateway = loopback_gateway(int(base.rsplit(":", 1)[1]), {}, AMPLE)
        with running_gateway(gateway, tmp_path_factory.mktemp("envoy")) as running:
            yield running


def test_spoofed_forwarded_addresses_share_the_peers_sign_up_limit(envoy: RunningGateway) -> None:
    with httpx.Client(base_url=envoy.base, timeout=10) as client:
        answers = [
            client.post(
                "/identity/sign-up",
                json={},
                headers=[*spoofed, ("X-Correlation-Id", f"spoofed-{i}")],
            )
            for i, spoofed in enumerate(SPOOFED)
        ]

    statuses = [answer.status_code for answer in answers]
    assert statuses == [422] * SIGN_UPS + [429] * (len(SPOOFED) - SIGN_UPS), statuses
    assert answers[-1].json()["type"] == "/problems/rate-limited"
    clients = {envoy.logged(correlation_id=f"spoofed-{i}")["client"] for i in range(len(SPOOFED))}
    assert clients == {"127.0.0.1"}
