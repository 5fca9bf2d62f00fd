"""The gateway's local rate limit, through a real Envoy: a small bucket, then 429."""

from collections.abc import Iterator

import httpx
import pytest

from gateway.filters import TokenBucket
from tests.support.gateway import (
    RecordingServer,
    RunningGateway,
    Signer,
    loopback_gateway,
    running_gateway,
)

BUCKET = TokenBucket(max_tokens=3, tokens_per_fill=1, fill_seconds=60)
"""Three requests, then one a minute: the test's fourth request is refused."""


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    keys = RecordingServer({"/jwks.json": Signer("rate-1").jwks()})
    try:
        gateway = loopback_gateway(keys.port, {}, BUCKET)
        with running_gateway(gateway, tmp_path_factory.mktemp("envoy")) as running:
            yield running
    finally:
        keys.close()


def test_over_the_bucket_a_request_gets_429_problem_with_retry_after(envoy: RunningGateway) -> None:
    with httpx.Client(base_url=envoy.base) as client:
        allowed = [client.get("/healthz").status_code for _ in range(BUCKET.max_tokens)]
        refused = client.get("/healthz", headers={"X-Correlation-Id": "over-the-limit"})

    assert allowed == [200] * BUCKET.max_tokens
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["x-correlation-id"] == "over-the-limit"
    assert refused.json() == {
        "type": "/problems/rate-limited",
        "title": "Too many requests",
        "status": 429,
        "detail": "local_rate_limited",
        "instance": "/healthz",
    }
    assert envoy.logged(correlation_id="over-the-limit")["status"] == 429
