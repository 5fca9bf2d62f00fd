"""The key-value shaped read models in Redis (stack mode), keys as `readmodels.keys` lays
them out: `rm:{user_profiles:v<k>}:user:<id>`, `rm:{user_stats:v<k>}:stats:<user id>`,
`rm:{top_spenders:v<k>}:top:<CUR>`, and each model's checkpoint per context."""

import json
from collections.abc import Iterable, Mapping
from typing import cast
from uuid import UUID

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from read_api.stores.base import Profile, Spender, Stats
from read_api.stores.version_cache import ActiveVersions
from readmodels import keys
from readmodels.catalog import TOP_SPENDERS, USER_PROFILES, USER_STATS, ReadModel
from readmodels.checkpoints import Positions
from readmodels.formats import stored_time
from readmodels.keys import RedisLayout
from readmodels.partition_checkpoints import redis_all_positions

LAYOUT = RedisLayout()
RECONNECT_ONCE = Retry(NoBackoff(), retries=1, supported_errors=(redis.ConnectionError,))
"""A pooled connection Redis closed (a restart, CLIENT KILL) is re-made at once and the command
sent again; a Redis that is down still fails the read promptly (a 503), and a timeout is not
retried: the request's deadline already bounds it."""


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
        registered_at=stored_time(fields["registered_at"]),
        updated_at=stored_time(fields["updated_at"]),
    )


def stats_from_hash(fields: Mapping[str, str]) -> Stats:
    return Stats(
        orders=int(fields.get("orders", 0)),
        spent_cents={
            currency: int(value)
            for name, value in sorted(fields.items())
            if (currency := keys.spent_currency(name)) is not None
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

    def _active(self, model: ReadModel) -> ReadModel:
        return model if self._versions is None else self._versions.resolve(model)

    def _key(self, model: ReadModel, key: str) -> str:
        active = self._active(model)
        return LAYOUT.prefix(active.name, active.version) + key

    def positions(self, models: Iterable[ReadModel]) -> Positions:
        return redis_all_positions(self._redis, LAYOUT, [self._active(model) for model in models])

    def _hash(self, key: str) -> dict[str, str]:
        return {_text(name): _text(value) for name, value in self._redis.hgetall(key).items()}

    def profile(self, user_id: UUID) -> Profile | None:
        fields = self._hash(self._key(USER_PROFILES, keys.user_profile_key(user_id)))
        return profile_from_hash(fields) if fields else None

    def stats(self, user_id: UUID) -> Stats | None:
        fields = self._hash(self._key(USER_STATS, keys.user_stats_key(user_id)))
        return stats_from_hash(fields) if fields else None

    def top_spenders(self, currency: str, limit: int) -> list[Spender]:
        ranked = cast(
            list[tuple[bytes | str, float]],
            self._redis.zrevrange(
                self._key(TOP_SPENDERS, keys.top_spenders_key(currency)),
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
