"""Read models written by hand, exactly as docs/read-models.md lays them out, for read API tests.

`ReadModelWriter` puts profiles, stats, leaderboards, directory entries, orders, daily sales
and checkpoints where a projector would: the embedded read database (`<data_dir>/read.sqlite`,
document models in `rm_hashes` / `rm_sorted_sets`), or Redis plus the PostgreSQL read database.
Moving a checkpoint announces it like a projector does (`PUBLISH rm:ckpt:db<n>`, `NOTIFY rm_ckpt`).
"""

import json
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
import redis

from contexts.registered import REGISTRY
from contexts.settings import Settings
from domain.values import caseless
from readmodels import keys
from readmodels.catalog import TOP_SPENDERS as TOP
from readmodels.catalog import USER_PROFILES, USER_STATS, ReadModel
from readmodels.checkpoints import (
    Checkpoint,
    checkpoint_payload,
    ensure_checkpoint,
    write_checkpoint,
)
from readmodels.formats import utc_text
from readmodels.keys import RedisLayout, redis_checkpoint_channel
from readmodels.partition_checkpoints import partition_slot, write_partition_checkpoint
from readmodels.schema import DOCUMENT_TABLES, SHARED_TABLES, create_tables
from readmodels.sql import SqlDatabase
from tests.support.postgres import services_required

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
SCRATCH_CLAIM = "strata:test:scratch-claim"

ALL = REGISTRY.read_models
"""The registered contexts' read models."""
RELATIONAL_TABLES = tuple(table for model in ALL for table in model.tables)
"""The relational tables as the projectors create them (docs/read-models.md)."""
LAYOUT = RedisLayout()

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class OrderLineRow:
    sku: str
    quantity: int
    unit_price_cents: int


class ReadModelWriter:
    """Writes read models like a projector. `redis` is None in the embedded mode, where the
    document-shaped models live in the SQL database's generic tables."""

    def __init__(self, sql: SqlDatabase, redis_client: redis.Redis | None = None) -> None:
        self.sql = sql
        self.redis = redis_client
        with sql.transaction() as tx:
            create_tables(tx, (*SHARED_TABLES, *DOCUMENT_TABLES, *RELATIONAL_TABLES))
            for projection in ALL:
                for context in projection.contexts:
                    ensure_checkpoint(tx, projection.name, projection.version, context)

    # -- document-shaped models ---------------------------------------------------------------

    def _hash(self, projection: ReadModel, key: str, fields: Mapping[str, str]) -> None:
        if self.redis is not None:
            # redis-py types `mapping` as Mapping[FieldT, EncodableT]: a Mapping's key type is
            # invariant, so only a mapping keyed by that whole union fits, never Mapping[str, str]
            self.redis.hset(
                LAYOUT.prefix(projection.name, projection.version) + key,
                mapping=fields,  # type: ignore[arg-type]
            )
            return
        with self.sql.transaction() as tx:
            for name, value in fields.items():
                tx.execute(
                    "INSERT INTO rm_hashes (projection, version, key, field, value)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (projection, version, key, field)"
                    " DO UPDATE SET value = excluded.value",
                    [projection.name, projection.version, key, name, value],
                )

    def profile(
        self,
        user_id: uuid.UUID,
        name: str,
        email: str,
        *,
        hobbies: Sequence[str] = (),
        city: str | None = None,
        country: str | None = None,
        active: bool = True,
        version: int = 1,
        registered_at: datetime = T0,
        updated_at: datetime = T0,
    ) -> None:
        fields = {
            "id": str(user_id),
            "name": name,
            "email": email,
            "hobbies": json.dumps(list(hobbies)),
            "active": "1" if active else "0",
            "version": str(version),
            "position": str(version),
            "registered_at": utc_text(registered_at),
            "updated_at": utc_text(updated_at),
        }
        if city is not None and country is not None:
            fields |= {"city": city, "country": country}
        self._hash(USER_PROFILES, keys.user_profile_key(user_id), fields)

    def stats(self, user_id: uuid.UUID, orders: int, spent: Mapping[str, int]) -> None:
        spent_fields = {keys.SPENT_FIELD.format(currency=c): str(v) for c, v in spent.items()}
        self._hash(USER_STATS, keys.user_stats_key(user_id), {"orders": str(orders)} | spent_fields)

    def top(self, currency: str, user_id: uuid.UUID, cents: int) -> None:
        if self.redis is not None:
            key = LAYOUT.prefix(TOP.name, TOP.version) + keys.top_spenders_key(currency)
            self.redis.zadd(key, {str(user_id): cents})
            return
        with self.sql.transaction() as tx:
            tx.execute(
                "INSERT INTO rm_sorted_sets (projection, version, key, member, score)"
                " VALUES (?, ?, ?, ?, ?)",
                [TOP.name, TOP.version, keys.top_spenders_key(currency), str(user_id), cents],
            )

    # -- relational models -------------------------------------------------------------------

    def directory_entry(
        self,
        user_id: uuid.UUID,
        name: str,
        *,
        email: str | None = None,
        city: str | None = None,
        country: str | None = None,
        hobbies: Sequence[str] = (),
        active: bool = True,
        version: int = 1,
        registered_at: datetime = T0,
    ) -> None:
        with self.sql.transaction() as tx:
            tx.execute(
                "INSERT INTO users_directory (id, name, name_lower, email, city, country, active,"
                " version, registered_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    user_id,
                    name,
                    caseless(name),
                    email or f"{user_id.hex[:8]}@example.com",
                    city,
                    country,
                    active,
                    version,
                    registered_at,
                    registered_at,
                ],
            )
            for hobby in hobbies:
                tx.execute(
                    "INSERT INTO user_hobbies (user_id, hobby_lower, hobby) VALUES (?, ?, ?)",
                    [user_id, caseless(hobby), hobby],
                )

    def order(
        self,
        order_id: uuid.UUID,
        user_id: uuid.UUID,
        *,
        currency: str = "EUR",
        status: str = "draft",
        lines: Sequence[OrderLineRow] = (),
        created_at: datetime = T0,
        placed_at: datetime | None = None,
        paid_at: datetime | None = None,
        shipped_at: datetime | None = None,
        cancelled_at: datetime | None = None,
        cancel_reason: str | None = None,
        version: int = 1,
    ) -> None:
        total = sum(line.quantity * line.unit_price_cents for line in lines)
        with self.sql.transaction() as tx:
            tx.execute(
                "INSERT INTO orders (id, user_id, currency, status, total_cents, line_count,"
                " created_at, placed_at, paid_at, shipped_at, cancelled_at, cancel_reason,"
                " version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    order_id,
                    user_id,
                    currency,
                    status,
                    total,
                    len(lines),
                    created_at,
                    placed_at,
                    paid_at,
                    shipped_at,
                    cancelled_at,
                    cancel_reason,
                    version,
                ],
            )
            for line in lines:
                tx.execute(
                    "INSERT INTO order_lines (order_id, sku, quantity, unit_price_cents)"
                    " VALUES (?, ?, ?, ?)",
                    [order_id, line.sku, line.quantity, line.unit_price_cents],
                )

    def daily_sales(
        self,
        day: date,
        currency: str,
        *,
        orders_paid: int = 0,
        paid_cents: int = 0,
        orders_refunded: int = 0,
        refunded_cents: int = 0,
    ) -> None:
        with self.sql.transaction() as tx:
            tx.execute(
                "INSERT INTO daily_sales (day, currency, orders_paid, paid_cents,"
                " orders_refunded, refunded_cents) VALUES (?, ?, ?, ?, ?, ?)",
                [day, currency, orders_paid, paid_cents, orders_refunded, refunded_cents],
            )

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self, projection: ReadModel, context: str, position: int) -> None:
        """Move a checkpoint and announce it, as the projector does after a commit."""
        if self.redis is not None and projection.shape == "documents":
            self.redis.set(
                LAYOUT.checkpoint_key(projection.name, projection.version, context), position
            )
            payload = checkpoint_payload(
                projection.name, projection.version, context, Checkpoint(position)
            )
            db = int(self.redis.connection_pool.connection_kwargs.get("db", 0) or 0)
            self.redis.publish(redis_checkpoint_channel(db), payload)
            return
        with self.sql.transaction() as tx:  # NOTIFY rm_ckpt on commit, in PostgreSQL
            write_checkpoint(tx, projection.name, projection.version, context, Checkpoint(position))

    def partition_checkpoint(
        self, projection: ReadModel, context: str, partition: int, position: int
    ) -> None:
        """Move one partition's checkpoint and announce it, as a projector worker does."""
        if self.redis is not None and projection.shape == "documents":
            name, version = projection.name, projection.version
            self.redis.set(
                LAYOUT.partition_checkpoint_key(name, version, context, partition), position
            )
            payload = checkpoint_payload(
                name, version, partition_slot(context, partition), Checkpoint(position)
            )
            db = int(self.redis.connection_pool.connection_kwargs.get("db", 0) or 0)
            self.redis.publish(redis_checkpoint_channel(db), payload)
            return
        with self.sql.transaction() as tx:
            write_partition_checkpoint(
                tx, projection.name, projection.version, context, partition, Checkpoint(position), 1
            )

    def checkpoint_all(self, position: int) -> None:
        for projection in ALL:
            for context in projection.contexts:
                self.checkpoint(projection, context, position)

    def clear(self) -> None:
        """Empty every read model and reset the checkpoints to 0 (shared stack databases)."""
        with self.sql.transaction() as tx:
            for name in (*(t.name for t in RELATIONAL_TABLES), "rm_hashes", "rm_sorted_sets"):
                tx.execute(f"DELETE FROM {name}")
            tx.execute("UPDATE rm_checkpoints SET position = 0, stream_seq = 0")
            tx.execute("DELETE FROM rm_partition_checkpoints")
        if self.redis is not None:
            claim = self.redis.get(SCRATCH_CLAIM)
            self.redis.flushdb()
            if claim is not None:
                self.redis.set(SCRATCH_CLAIM, claim)

    def close(self) -> None:
        self.sql.close()
        if self.redis is not None:
            self.redis.close()


def redis_server_url() -> str:
    return os.environ.get("STRATA_TEST_REDIS_URL", DEFAULT_REDIS_URL)


def require_redis() -> str:
    """The server URL, after checking it answers; fail (CI) or skip (laptop) if not."""
    url = redis_server_url()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        message = f"Redis at {url} is unreachable: {error}"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    return url


@contextmanager
def scratch_redis_database(url: str) -> Iterator[str]:
    """Claim an unused logical database (15 down to 1) for the block; flush it afterwards.

    The claim key expires after an hour, so a killed test run frees its database eventually.
    """
    token = uuid.uuid4().hex
    for index in range(15, 0, -1):
        client = redis.Redis.from_url(url, db=index)
        try:
            if client.dbsize() == 0 and client.set(SCRATCH_CLAIM, token, nx=True, ex=3600):
                try:
                    yield f"{url.rstrip('/')}/{index}"
                finally:
                    client.flushdb()
                return
        finally:
            client.close()
    raise RuntimeError(f"no free logical database on the Redis server at {url}")


@dataclass(frozen=True)
class Backend:
    """A storage mode of the read API under test: its settings, and a writer of its stores."""

    mode: str
    settings: Settings
    write: ReadModelWriter
