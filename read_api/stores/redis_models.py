"""The key-value shaped read models in Redis (stack mode), keys as in docs/read-models.md:

- `rm:{user_profiles:v1}:user:<id>` hash — the profile document;
- `rm:{user_stats:v1}:stats:<user id>` hash — `orders` and `spent:<CUR>` (cents);
- `rm:{top_spenders:v1}:top:<CUR>` sorted set — user ids scored by cents spent;
- `rm:{<proj>:v<k>}:ckpt:<context>` — each projection's checkpoint per context.
"""

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from read_api.catalog import TOP_SPENDERS, USER_PROFILES, USER_STATS, Positions, Projection
from read_api.stores.base import Profile, Spender, Stats
from read_api.stores.versions import ActiveVersions

SPENT_FIELD = "spent:"
RECONNECT_ONCE = Retry(NoBackoff(), retries=1, supported_errors=(redis.ConnectionError,))
"""A pooled connection Redis closed (a restart, CLIENT KILL) is re-made at once and the command
sent again; a Redis that is down still fails the read promptly (a 503), and a timeout is not
retried: the request's deadline already bounds it."""


def checkpoint_key(projection: Projection, context: str) -> str:
    return f"{projection.redis_prefix}ckpt:{context}"


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def profile_from_hash(fields: Mapping[str, str]) -> Profile:
    """A `user:<id>` hash (or a row of the same fields) as a profile."""
    return Profile(
        id=UUID(fields["id"]),
        name=fields["name"],
        email=fields["email"],
        hobbies=list(json.loads(fields.get("hobbies") or "[]")),
        city=fields.get("city") or None,
        country=fields.get("country") or None,
        active=fields.get("active", "1") == "1",
        version=int(fields["version"]),
        registered_at=parse_time(fields["registered_at"]),
        updated_at=parse_time(fields["updated_at"]),
    )


def stats_from_hash(fields: Mapping[str, str]) -> Stats:
    return Stats(
        orders=int(fields.get("orders", 0)),
        spent_cents={
            name.removeprefix(SPENT_FIELD): int(value)
            for name, value in sorted(fields.items())
            if name.startswith(SPENT_FIELD)
        },
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisKeyValue:
    """`KeyValueModels` over Redis."""

    def __init__(self, url: str, *, timeout: float, versions: ActiveVersions | None = None) -> None:
        self._versions = versions
        self._redis: redis.Redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            health_check_interval=30,
            retry=RECONNECT_ONCE,
        )

    def _active(self, projection: Projection) -> Projection:
        return projection if self._versions is None else self._versions.resolve(projection)

    def positions(self, projections: Iterable[Projection]) -> Positions:
        pairs = [(self._active(p), context) for p in projections for context in p.contexts]
        if not pairs:
            return {}
        values = self._redis.mget([checkpoint_key(p, context) for p, context in pairs])
        return {
            (p.name, context): int(value)
            for (p, context), value in zip(pairs, values, strict=True)
            if value is not None
        }

    def _hash(self, key: str) -> dict[str, str]:
        return {_text(name): _text(value) for name, value in self._redis.hgetall(key).items()}

    def profile(self, user_id: UUID) -> Profile | None:
        fields = self._hash(f"{self._active(USER_PROFILES).redis_prefix}user:{user_id}")
        return profile_from_hash(fields) if fields else None

    def stats(self, user_id: UUID) -> Stats | None:
        fields = self._hash(f"{self._active(USER_STATS).redis_prefix}stats:{user_id}")
        return stats_from_hash(fields) if fields else None

    def top_spenders(self, currency: str, limit: int) -> list[Spender]:
        ranked = cast(
            list[tuple[bytes | str, float]],
            self._redis.zrevrange(
                f"{self._active(TOP_SPENDERS).redis_prefix}top:{currency}",
                0,
                limit - 1,
                withscores=True,
            ),
        )
        return [Spender(UUID(_text(member)), int(score)) for member, score in ranked]

    def ping(self) -> None:
        self._redis.ping()

    def close(self) -> None:
        self._redis.close()
