"""Rate limits per caller and per route, counted in a real Redis: 429 problem+json with
`Retry-After`, callers and routes apart, a Redis that stops (fail-open) and returns (the
limits hold again without a restart), and the largest limits the settings take. The BFFs are the
apps under test; no read API is behind them (their sections are unavailable, which does not
matter here)."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from limits import parse
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, RateLimiter
from prometheus_client import CollectorRegistry

from bff.web.app import create_app as create_web_app
from runtime.rate_limit_pipeline import PipelinedRedisStorage
from runtime.rate_limit_settings import (
    MAX_AMOUNT,
    MAX_PERIOD_DAYS,
    MAX_PERIOD_SECONDS,
    RateLimitStrategy,
)
from runtime.rate_limits import (
    KEY_PREFIX,
    Counted,
    RateLimited,
    RateLimitMetrics,
    rate_limits_from_settings,
)
from runtime.settings import CommonSettings
from tests.support.api import assert_problem
from tests.support.auth import Identity, new_key
from tests.support.bff import bearer, bff_settings, breaker_state
from tests.support.processes import free_port
from tests.support.read_models import require_redis, scratch_redis_database
from tests.support.servers import RedisServer, require_server_binaries, wait_until

DASHBOARD = "/web/dashboard"
NOTHING_THERE = f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def redis_url() -> Iterator[str]:
    with scratch_redis_database(require_redis()) as url:
        yield url


def test_over_the_limit_is_429_with_retry_after(redis_url: str) -> None:
    settings = bff_settings(
        NOTHING_THERE, redis_url=redis_url, rate_limit_routes={f"GET {DASHBOARD}": "3/minute"}
    )
    ada, bob = bearer(uuid.uuid4()), bearer(uuid.uuid4())
    with TestClient(create_web_app(settings)) as web:
        allowed = [web.get(DASHBOARD, headers=ada).status_code for _ in range(3)]
        refused = web.get(DASHBOARD, headers=ada)
        others = web.get(DASHBOARD, headers=bob)
        health = [web.get("/healthz").status_code for _ in range(5)]

    assert allowed == [200, 200, 200]
    body = assert_problem(refused, 429, "more than 3 per 1 minute", f"GET {DASHBOARD}")
    assert body["type"] == "/problems/rate-limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert others.status_code == 200  # another caller has a count of its own
    assert health == [200] * 5  # routes that are not rate limited


def test_replicas_share_the_count_in_redis(redis_url: str) -> None:
    settings = bff_settings(NOTHING_THERE, redis_url=redis_url, rate_limit_default="2/minute")
    ada = bearer(uuid.uuid4())
    with (
        TestClient(create_web_app(settings)) as one,
        TestClient(create_web_app(settings)) as two,
    ):
        answers = [one.get(DASHBOARD, headers=ada), two.get(DASHBOARD, headers=ada)]
        third = two.get(DASHBOARD, headers=ada)

    assert [a.status_code for a in answers] == [200, 200]
    assert_problem(third, 429)


def test_anonymous_callers_count_by_address(redis_url: str) -> None:
    settings = bff_settings(NOTHING_THERE, redis_url=redis_url, rate_limit_default="2/minute")
    with TestClient(create_web_app(settings)) as web:
        statuses = [web.get(DASHBOARD).status_code for _ in range(3)]

    assert statuses == [401, 401, 429]  # counted before the token is looked at


def test_forged_tokens_naming_a_user_do_not_spend_that_users_count(redis_url: str) -> None:
    settings = bff_settings(NOTHING_THERE, redis_url=redis_url, rate_limit_default="2/minute")
    ada = uuid.uuid4()
    forger = Identity(key=new_key("test-key-1"))  # the trusted kid, another key
    with TestClient(create_web_app(settings)) as web:
        forged = [web.get(DASHBOARD, headers=forger.user(str(ada))).status_code for _ in range(3)]
        real = [web.get(DASHBOARD, headers=bearer(ada)).status_code for _ in range(2)]

    assert forged == [401, 401, 429]  # counted against the sender's address
    assert real == [200, 200]


def test_a_redis_down_lets_requests_through_and_its_return_brings_the_limits_back(
    tmp_path: Path,
) -> None:
    require_server_binaries()
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    settings = bff_settings(
        NOTHING_THERE,
        redis_url=redis_server.url,
        rate_limit_default="2/minute",
        rate_limit_timeout_seconds=0.5,
    )
    ada = bearer(uuid.uuid4())
    try:
        with TestClient(create_web_app(settings)) as web:
            redis_server.crash()
            while_down = [web.get(DASHBOARD, headers=ada).status_code for _ in range(5)]
            open_state = breaker_state(web.get("/metrics").text, "rate-limits")
            redis_server.start()

            def limited_again() -> bool:
                status: int = web.get(DASHBOARD, headers=ada).status_code
                return status == 429

            wait_until(limited_again, 15, "the limit holds again once Redis is back")
            skipped = web.get("/metrics").text
    finally:
        redis_server.close()

    assert while_down == [200] * 5
    assert open_state == 2
    assert 'strata_rate_limit_checks_total{outcome="skipped",route="GET /web/dashboard"}' in (
        skipped
    )


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("STRATA_RATE_LIMIT_DEFAULT", "lots", "'lots' is not a rate limit"),
        ("STRATA_RATE_LIMIT_ROUTES", '{"/web/dashboard": "1/minute"}', "<METHOD> /"),
        ("STRATA_RATE_LIMIT_ROUTES", '{"GET /x": "1/fortnight"}', "'1/fortnight' of GET /x"),
        ("STRATA_RATE_LIMIT_STRATEGY", "leaky", "moving-window"),
        ("STRATA_RATE_LIMIT_DEFAULT", "5/99999999999999999 years", "has too long a period"),
        ("STRATA_RATE_LIMIT_DEFAULT", "99999999999999999999999/second", "lets too many"),
        ("STRATA_RATE_LIMIT_ROLES", '{"service": "1000000001/second"}', "of role service"),
    ],
)
def test_limits_are_checked_when_the_settings_load(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match="rate") as refused:
        CommonSettings()
    assert says in str(refused.value)


LARGEST = f"{MAX_AMOUNT}/{MAX_PERIOD_DAYS} days"
ONCE_IN_THE_LONGEST = f"1/{MAX_PERIOD_DAYS} days"


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window"])
def test_the_largest_limits_the_settings_take_are_counted_in_redis(
    redis_url: str, strategy: RateLimitStrategy
) -> None:
    """At the bounds of runtime/rate_limit_settings.py a hit is counted, not skipped as a
    storage error (past them Redis refuses it, and every request would go through)."""
    settings = CommonSettings(
        redis_url=redis_url,
        rate_limit_strategy=strategy,
        rate_limit_default=LARGEST,
        rate_limit_routes={"GET /once": ONCE_IN_THE_LONGEST},
    )
    registry = CollectorRegistry()
    ada = Counted("sub:ada")

    async def scenario() -> int:
        async with rate_limits_from_settings(settings, RateLimitMetrics(registry)) as limits:
            for _ in range(3):
                await limits.hit("GET /x", ada)
            await limits.hit("GET /once", ada)
            with pytest.raises(RateLimited) as refused:
                await limits.hit("GET /once", ada)
            return refused.value.retry_after

    retry_after = asyncio.run(scenario())

    def checks(route: str, outcome: str) -> float | None:
        labels = {"route": route, "outcome": outcome}
        return registry.get_sample_value("strata_rate_limit_checks_total", labels)

    assert (checks("GET /x", "allowed"), checks("GET /x", "skipped")) == (3, None)
    assert (checks("GET /once", "allowed"), checks("GET /once", "limited")) == (1, 1)
    assert checks("GET /once", "skipped") is None
    assert MAX_PERIOD_SECONDS - 60 <= retry_after <= MAX_PERIOD_SECONDS


@pytest.mark.parametrize("strategy", [MovingWindowRateLimiter, FixedWindowRateLimiter])
def test_the_largest_amount_counts_down_in_redis(
    redis_url: str, strategy: type[RateLimiter]
) -> None:
    limit = parse(LARGEST)

    async def scenario() -> None:
        storage = PipelinedRedisStorage(
            f"async+{redis_url}", key_prefix=KEY_PREFIX, wrap_exceptions=True
        )
        limiter = strategy(storage)
        try:
            assert await limiter.hit(limit, "GET /x", "sub:ada")
            assert await limiter.hit(limit, "GET /x", "sub:ada")
            stats = await limiter.get_window_stats(limit, "GET /x", "sub:ada")
            assert stats.remaining == MAX_AMOUNT - 2
            if strategy is FixedWindowRateLimiter:  # a counter: cheap to fill to the limit
                assert await limiter.hit(limit, "GET /x", "sub:ada", cost=MAX_AMOUNT - 2)
                assert not await limiter.hit(limit, "GET /x", "sub:ada")
        finally:
            await storage.bridge.get_connection().aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())
