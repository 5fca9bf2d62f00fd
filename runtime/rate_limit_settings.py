"""The rate-limit settings, part of every process's settings (`runtime.settings`) and read by
`runtime.rate_limits` (docs/rate-limits.md)."""

import re
from typing import Annotated, Literal

from limits import parse_many
from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings

from runtime.live_field import LIVE

RateLimitStrategy = Literal["moving-window", "fixed-window"]
ROUTE_KEY = re.compile(r"(GET|HEAD|POST|PUT|PATCH|DELETE) /\S*")
ZERO_PERIOD = re.compile(r"(/|per)\s*0+\s*[a-z]", re.IGNORECASE)
MAX_AMOUNT = 1_000_000_000
"""The most requests one limit lets through per period (docs/rate-limits.md)."""
MAX_PERIOD_DAYS = 3650
MAX_PERIOD_SECONDS = MAX_PERIOD_DAYS * 24 * 60 * 60
"""The longest period of a limit, 10 years (`limits`' year is 360 days: `10 years` fits).

Past bounds like these the storage refuses the hit, and the check fails open on every request:
Redis's EXPIRE refuses a period whose milliseconds from now overflow 64 bits (about 9.2e15
seconds), and the moving window's script, in Lua doubles, sends an amount past 1e17 back to
Redis as `1e+17`, which is no list index. These bounds are far inside both, and
tests/component/test_rate_limits.py checks them against a real Redis with both strategies."""

DEFAULT_RATE_LIMIT = "10/second;300/minute"
"""A person's requests to one route: bursts of 10 a second, 5 a second over a minute."""
PrivilegedRole = Literal["operator", "service"]
DEFAULT_ROLE_LIMITS: dict[PrivilegedRole, str] = {
    "operator": "100/second",
    "service": "1000/second",
}
"""Operators (people with scripts) and service accounts (the system's own traffic, for every
user at once) get their own limits instead of the route's (docs/rate-limits.md)."""


def _limits_text(text: str, route: str | None = None) -> str:
    """Refuse what `limits` cannot read as one or more rate limits, any limit with a zero, and
    any past `MAX_AMOUNT` or `MAX_PERIOD_SECONDS`."""
    where = f" of {route}" if route else ""
    try:
        items = parse_many(text)
    except ValueError:
        raise ValueError(
            f"{text!r}{where} is not a rate limit such as '60/minute' or '10/second;500/hour'"
        ) from None
    if any(item.amount < 1 for item in items) or ZERO_PERIOD.search(text):
        # `limits` reads '0/second' as refusing every request and '10 per 0 minute' as a minute
        raise ValueError(f"{text!r}{where} has a zero: a limit lets 1 or more through per period")
    if any(item.amount > MAX_AMOUNT for item in items):
        raise ValueError(f"{text!r}{where} lets too many through: at most {MAX_AMOUNT} per period")
    if any(item.get_expiry() > MAX_PERIOD_SECONDS for item in items):
        raise ValueError(
            f"{text!r}{where} has too long a period: at most {MAX_PERIOD_DAYS} days"
            f" ({MAX_PERIOD_SECONDS} seconds, 10 years)"
        )
    return text


def _route_limits(routes: dict[str, str]) -> dict[str, str]:
    for route, text in routes.items():
        if ROUTE_KEY.fullmatch(route) is None:
            raise ValueError(f"{route!r} is not `<METHOD> /<path template>`")
        _limits_text(text, route)
    return routes


def _role_limits(roles: dict[PrivilegedRole, str]) -> dict[PrivilegedRole, str]:
    for role, text in roles.items():
        _limits_text(text, f"role {role}")
    return roles


# Validators in the types, not the model: a live value (runtime/live_settings.py) is checked
# against these fields alone, so their checks must travel with them.
RateLimitText = Annotated[str, AfterValidator(_limits_text)]
RouteLimits = Annotated[dict[str, str], AfterValidator(_route_limits)]
RoleLimits = Annotated[dict[PrivilegedRole, str], AfterValidator(_role_limits)]


class RateLimitSettings(BaseSettings):
    rate_limit_default: RateLimitText = Field(
        DEFAULT_RATE_LIMIT,
        description="Requests one caller may make to one rate-limited route, such as `60/minute`"
        " or `10/second;300/minute` (every limit holds).",
        json_schema_extra=LIVE,
    )
    rate_limit_routes: RouteLimits = Field(
        default_factory=dict,
        description="Limits of particular routes instead of the default, as JSON:"
        ' `{"GET /web/dashboard": "30/minute"}` (method, space, the route\'s path template).',
        json_schema_extra=LIVE,
    )
    rate_limit_roles: RoleLimits = Field(
        default_factory=lambda: dict(DEFAULT_ROLE_LIMITS),
        description="Limits of the callers holding a role, instead of the route's, as JSON:"
        ' `{"operator": "100/second", "service": "1000/second"}`; a role left out gets the'
        " route's limits like a user.",
        json_schema_extra=LIVE,
    )
    rate_limit_strategy: RateLimitStrategy = Field(
        "moving-window",
        description="`moving-window` (exact, one sorted set per caller and route) or"
        " `fixed-window` (one counter, allows bursts at window edges).",
    )
    rate_limit_timeout_seconds: float = Field(
        0.25,
        gt=0,
        le=10,
        description="Seconds a rate-limit check may wait for Redis; beyond, or with Redis down,"
        " the request goes through (fail-open, see docs/rate-limits.md).",
    )
