"""Rate limits per caller and per route, counted in Redis so that every replica shares them.

- `RateLimitRules`: the limits of the settings (`STRATA_RATE_LIMIT_DEFAULT`, `..._ROUTES`,
  `..._ROLES`), parsed by the `limits` library.
- `RateLimits`: a hit of one caller on one route against its rules, in a `limits` storage (Redis
  when `STRATA_REDIS_URL` is set, else this process's memory) with the moving or the fixed window.
  Over a limit: `RateLimited`, with the seconds until the window frees. `follow(settings)`
  swaps its rules at once: the hook of the live settings (the config sidecar).
- `RateLimitedRoute`: the route class of rate-limited endpoints: every request is a hit of its
  caller on `<METHOD> <path template>`, and its OpenAPI operation declares the 429.
- `install_rate_limits(app, settings, caller)`: the app's `RateLimits` while it runs, how it
  names a caller (`by_subject`: the verified token's subject and role, else the address), and
  the 429 answer (problem+json with `Retry-After`); `rate_limits_of(app)` is the running one.

Redis down fails open: the check is skipped, counted in
`strata_rate_limit_checks{outcome="skipped"}`, and a circuit breaker
(`strata_breaker_state{downstream="rate-limits"}`) keeps requests from waiting on a dead Redis;
its half-open probe brings the limits back when Redis returns. Why open: these limits share
capacity fairly among callers; they are not what keeps anyone out (authentication is), and the
gateway's local limit still bounds the load. Closing would turn a Redis outage into an outage
of every rate-limited route. In memory a check can neither fail nor wait on anything, so it runs
without the breaker and the timeout.
"""

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis.asyncio
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
)
from limits.errors import StorageError
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from starlette.routing import BaseRoute, Mount

from runtime.auth.http import Unauthenticated, verified_principal
from runtime.auth.jwks import KeysUnavailable
from runtime.auth.principal import INSECURE_OPERATOR, Role
from runtime.http.before_body import settled_before_body
from runtime.http.preflight import add_start_check
from runtime.http.problem_types import RATE_LIMITED
from runtime.http.problems import problem
from runtime.live_settings import add_live_check, live_settings_of
from runtime.rate_limit_memory import PacedMemoryStorage
from runtime.rate_limit_pipeline import PipelinedRedisStorage
from runtime.rate_limit_settings import PrivilegedRole
from runtime.resilience import BreakerOpen, CircuitBreaker
from runtime.settings import CommonSettings

log = logging.getLogger("strata.rate_limits")

KEY_PREFIX = "strata:rate-limits"
BREAKER = "rate-limits"
RATE_LIMIT_SETTINGS = frozenset({"rate_limit_default", "rate_limit_routes", "rate_limit_roles"})
"""The live settings (runtime/live_settings.py) the running limits follow."""
COUNTED = "strata.rate_limit_counted"
"""The key, in a request's state, saying its hit is counted (the hit is awaited twice)."""
PRIVILEGED = (Role.OPERATOR, Role.SERVICE)
"""The roles that may have limits of their own, first found first."""


@dataclass(frozen=True)
class Counted:
    """Whom a request counts against: `key` (`sub:<uuid>`, or `ip:<address>` when anonymous),
    and the role whose limits replace the route's (None: the route's)."""

    key: str
    role: str | None = None


Caller = Callable[[Request], Awaitable[Counted]]


class RateLimited(Exception):
    """A caller went over a limit of a route; `retry_after` seconds on, it may call again."""

    def __init__(self, route: str, limit: RateLimitItem, retry_after: int) -> None:
        super().__init__(f"more than {limit} on {route} for this caller; retry in {retry_after} s")
        self.retry_after = retry_after


class RateLimitRules:
    """The limits of each route: its own from `routes`, else `default`; a caller of a role in
    `roles` has that role's instead, on every route. Every limit of a rule holds
    (`10/second;500/hour`)."""

    def __init__(
        self,
        default: str,
        routes: Mapping[str, str],
        roles: Mapping[PrivilegedRole, str] | None = None,
    ) -> None:
        self._default = parse_many(default)
        self._routes = {route: parse_many(text) for route, text in routes.items()}
        self._roles: dict[str, list[RateLimitItem]] = {
            role: parse_many(text) for role, text in (roles or {}).items()
        }

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> "RateLimitRules":
        return cls(
            settings.rate_limit_default, settings.rate_limit_routes, settings.rate_limit_roles
        )

    def of(self, route: str, role: str | None = None) -> list[RateLimitItem]:
        """A role's limits if it has some, else the route's own, else the default."""
        if role is not None and role in self._roles:
            return self._roles[role]
        return self._routes.get(route, self._default)


class RateLimitMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.checks = Counter(
            "strata_rate_limit_checks",
            "Rate-limit checks per route, by outcome: allowed, limited, or skipped (Redis down).",
            ("route", "outcome"),
            registry=registry,
        )


@cache
def rate_limit_metrics(registry: CollectorRegistry = REGISTRY) -> RateLimitMetrics:
    return RateLimitMetrics(registry)


@dataclass(frozen=True)
class StorageGuard:
    """How the checks wait on a storage that can fail or stall (Redis): a storage call that
    fails or takes over `timeout` seconds lets the request through (fail-open); `breaker` then
    skips the calls for a while instead of waiting on each."""

    breaker: CircuitBreaker
    timeout: float


class RateLimits:
    """Counts the hits of callers on routes in the `limiter`'s storage and refuses those over
    their rules; through `guard` when the storage can fail or stall, else (this process's
    memory) directly."""

    def __init__(
        self,
        rules: RateLimitRules,
        limiter: RateLimiter,
        guard: StorageGuard | None = None,
        *,
        metrics: RateLimitMetrics | None = None,
    ) -> None:
        self._rules = rules
        self._limiter = limiter
        self._guard = guard
        self._metrics = metrics or rate_limit_metrics()

    def replace(self, rules: RateLimitRules) -> None:
        """Apply other rules from the next request on."""
        self._rules = rules

    def follow(self, settings: CommonSettings) -> None:
        """The rules of new settings: the hook of `RATE_LIMIT_SETTINGS` (a live reload)."""
        self.replace(RateLimitRules.from_settings(settings))
        log.info("rate limits replaced", extra={"default": settings.rate_limit_default})

    async def hit(self, route: str, caller: Counted) -> None:
        """Count one request of `caller` on `route`; raise `RateLimited` if it is one too many."""
        if self._guard is None:
            refused = await self._first_exceeded(route, caller)
        else:
            try:
                refused = await self._guarded(self._guard, route, caller)
            except (BreakerOpen, StorageError, TimeoutError) as error:
                self._metrics.checks.labels(route, "skipped").inc()
                if not isinstance(error, BreakerOpen):
                    log.warning("rate limit not checked: %s", error or type(error).__name__)
                return
        self._metrics.checks.labels(route, "limited" if refused else "allowed").inc()
        if refused:
            raise refused

    async def _guarded(
        self, guard: StorageGuard, route: str, caller: Counted
    ) -> RateLimited | None:
        with guard.breaker.guard():
            async with asyncio.timeout(guard.timeout):  # inside the breaker: a timeout counts
                return await self._first_exceeded(route, caller)

    async def _first_exceeded(self, route: str, caller: Counted) -> RateLimited | None:
        for limit in self._rules.of(route, caller.role):
            if not await self._limiter.hit(limit, route, caller.key):
                stats = await self._limiter.get_window_stats(limit, route, caller.key)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                return RateLimited(route, limit, retry_after)
        return None


@asynccontextmanager
async def rate_limits_from_settings(
    settings: CommonSettings, metrics: RateLimitMetrics | None = None
) -> AsyncIterator[RateLimits]:
    """`RateLimits` of the settings' rules over Redis (`redis_url`), guarded, or over this
    process's memory without one (the embedded mode); the Redis connections close at the end."""
    pool = None
    storage: Storage
    guard = None
    if settings.redis_url:
        timeout = settings.rate_limit_timeout_seconds
        pool = redis.asyncio.ConnectionPool.from_url(
            settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        storage = PipelinedRedisStorage(
            "async+" + settings.redis_url,
            connection_pool=pool,
            wrap_exceptions=True,
            key_prefix=KEY_PREFIX,
        )
        breaker = CircuitBreaker(
            BREAKER,
            failure_threshold=settings.breaker_failure_threshold,
            recovery_seconds=settings.breaker_recovery_seconds,
            failures=(StorageError, TimeoutError),
        )
        guard = StorageGuard(breaker, timeout)
    else:
        storage = PacedMemoryStorage()
    window = MovingWindowRateLimiter if settings.rate_limit_strategy == "moving-window" else None
    limiter = (window or FixedWindowRateLimiter)(storage)
    rules = RateLimitRules.from_settings(settings)
    try:
        yield RateLimits(rules, limiter, guard, metrics=metrics)
    finally:
        if pool is not None:
            await pool.disconnect()


def client_address(request: Request) -> str:
    """The caller as its address (behind a proxy, uvicorn's `--forwarded-allow-ips` decides
    whether that is the proxy's or the client's from `X-Forwarded-For`)."""
    host = request.client.host if request.client else "unknown"
    return f"ip:{host}"


async def by_address(request: Request) -> Counted:
    """The `Caller` that counts every request against its address."""
    return Counted(client_address(request))


async def by_subject(request: Request) -> Counted:
    """The `Caller` that counts a request against its verified subject, with the limits of its
    operator or service role if it holds one, else against its address: a forged token naming
    a user costs that user nothing (nor does one that cannot be checked while the identity's
    keys cannot be fetched: the route answers it 503). In the insecure mode every caller is the
    same operator, so the address tells them apart."""
    try:
        principal = await verified_principal(request)
    except (Unauthenticated, KeysUnavailable):
        return Counted(client_address(request))
    role = next((role.value for role in PRIVILEGED if principal.has(role)), None)
    if principal is INSECURE_OPERATOR:
        return Counted(client_address(request), role)
    return Counted(f"sub:{principal.subject}", role)


@dataclass(frozen=True)
class _Installed:
    limits: RateLimits
    caller: Caller


def install_rate_limits(
    app: FastAPI,
    settings: CommonSettings,
    caller: Caller = by_subject,
    registry: CollectorRegistry = REGISTRY,
) -> None:
    """Count the requests to `app`'s `RateLimitedRoute`s, each against `caller(request)`, in
    the storage of the settings, open while the app runs (its lifespan); over a limit the
    answer is a 429 problem with `Retry-After`; `registry` gets the checks' metrics. Installing
    twice (a host that includes another API's routes) keeps the first.

    The rules follow the app's live settings (`runtime.live_reload.live_settings_of`) when its
    own lifespan has attached some: they start from the current values and take every change."""
    if getattr(app.state, "rate_limits_installed", False):
        return
    app.state.rate_limits_installed = True
    add_start_check(app, lambda: check_route_limits(settings, limited_routes(app.routes)))
    add_live_check(app, lambda live: check_route_limits(live, limited_routes(app.routes)))
    metrics = rate_limit_metrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        live = live_settings_of(app)
        started = live.current if live else settings
        check_route_limits(started, limited_routes(app.routes))  # all included by now
        async with rate_limits_from_settings(started, metrics) as limits:
            if live is not None:
                live.on_change(RATE_LIMIT_SETTINGS, limits.follow)
            app.state.rate_limits = _Installed(limits, caller)
            yield

    app.include_router(APIRouter(lifespan=lifespan))
    app.add_exception_handler(RateLimited, _on_rate_limited)


def rate_limits_of(app: FastAPI) -> RateLimits:
    """The running app's `RateLimits` (to `replace` its rules on a settings reload)."""
    installed: _Installed | None = getattr(app.state, "rate_limits", None)
    if installed is None:
        raise RuntimeError("the app has no rate limits running (install_rate_limits)")
    return installed.limits


async def _on_rate_limited(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RateLimited)
    headers = {"Retry-After": str(error.retry_after)}
    return problem(request, RATE_LIMITED, str(error), headers=headers)


class RateLimitedRoute(APIRoute):
    """A route whose every request counts against its caller's limit of `<METHOD> <path>`
    (the path template, such as `GET /mobile/orders/{order_id}`), checked before its other
    dependencies (and, in a `JsonRoute`, before the body is read: `before_body`); its OpenAPI
    operation lists the 429 (`x-problems`)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = sorted(kwargs.get("methods") or ["GET"])
        route = f"{methods[0]} {path}"

        @settled_before_body
        async def count_hit(request: Request) -> None:
            state: dict[str, Any] = request.scope.setdefault("state", {})
            if state.get(COUNTED):  # settled before the body already
                return
            state[COUNTED] = True
            installed: _Installed | None = getattr(request.app.state, "rate_limits", None)
            if installed is None:
                raise RuntimeError("a RateLimitedRoute in an app without install_rate_limits")
            await installed.limits.hit(route, await installed.caller(request))

        kwargs["dependencies"] = [Depends(count_hit), *(kwargs.get("dependencies") or [])]
        extra = dict(kwargs.get("openapi_extra") or {})
        extra["x-problems"] = [*extra.get("x-problems", []), RATE_LIMITED.slug]
        kwargs["openapi_extra"] = extra
        super().__init__(path, endpoint, **kwargs)
        self.rate_limit_key = route
        """What `STRATA_RATE_LIMIT_ROUTES` names it by."""


class UnknownRoutes(ValueError):
    """Limits set for routes the service does not have: a typo would limit nothing, silently."""


def limited_routes(routes: Iterable[BaseRoute]) -> set[str]:
    """The keys of the rate-limited routes among `routes`, those of included routers and
    mounted apps too."""
    found: set[str] = set()
    for route in routes:
        if isinstance(route, RateLimitedRoute):
            found.add(route.rate_limit_key)
        # FastAPI keeps an included router's own routes behind a branch of its own (0.16x).
        included = getattr(route, "original_router", None)
        if isinstance(included, APIRouter):
            found |= limited_routes(included.routes)
        if isinstance(route, Mount):
            found |= limited_routes(route.routes)
    return found


def check_route_limits(settings: CommonSettings, known: Collection[str]) -> None:
    """Raise `UnknownRoutes` naming the routes of `rate_limit_routes` not among `known`."""
    unknown = sorted(set(settings.rate_limit_routes) - set(known))
    if unknown:
        raise UnknownRoutes(
            f"rate_limit_routes (STRATA_RATE_LIMIT_ROUTES): no rate-limited route"
            f" {', '.join(map(repr, unknown))} in this service; its routes:"
            f" {', '.join(sorted(known)) or 'none'}"
        )
