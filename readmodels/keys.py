"""Where the document-shaped read models keep their data: the Redis key layout and the document
keys (the same keys, without the Redis prefix, in the SQL tables `rm_hashes` /
`rm_sorted_sets` of the embedded mode).

| read model      | document                    | content                                     |
|-----------------|-----------------------------|---------------------------------------------|
| `user_profiles` | hash `user:<id>`            | the profile                                 |
| `user_stats`    | hash `stats:<user id>`      | `orders`, `spent:<CUR>` (cents)             |
| `top_spenders`  | sorted set `top:<CUR>`      | user ids scored by cents spent              |
| `user_stats`, `top_spenders` | hash `order:<id>` | `user_id, currency, paid_cents`        |

In Redis every key is prefixed `<root>:{<model>:v<k>}:` (`root` is `rm` except in isolated
tests; the `{…}` hash tag keeps a model's keys in one cluster slot), and the prefix also holds
the bookkeeping: `ckpt:<context>`, `seq:<context>` and `retried:<context>:<position>`.
"""

from dataclasses import dataclass
from uuid import UUID

from redis.connection import parse_url

USER_PROFILE = "user:{user_id}"
USER_STATS = "stats:{user_id}"
SPENT_FIELD = "spent:{currency}"
"""A field of a `stats:` hash: cents spent in one currency."""
TOP_SPENDERS = "top:{currency}"
ORDER_ATTRIBUTION = "order:{order_id}"
"""What the order-based models remember of an order, to attribute its later events."""

_SPENT_PREFIX = SPENT_FIELD.removesuffix("{currency}")


def user_profile_key(user_id: UUID | str) -> str:
    return USER_PROFILE.format(user_id=user_id)


def user_stats_key(user_id: UUID | str) -> str:
    return USER_STATS.format(user_id=user_id)


def top_spenders_key(currency: str) -> str:
    return TOP_SPENDERS.format(currency=currency)


def order_attribution_key(order_id: UUID | str) -> str:
    return ORDER_ATTRIBUTION.format(order_id=order_id)


def spent_currency(field: str) -> str | None:
    """The currency of a `spent:<CUR>` field; None for any other field."""
    return field.removeprefix(_SPENT_PREFIX) if field.startswith(_SPENT_PREFIX) else None


def redis_checkpoint_channel(db: int, root: str = "rm") -> str:
    """Redis pub/sub channel of the checkpoint moves of the documents `<root>:…` in Redis DB
    `db`: `rm:ckpt:db<n>`. Pub/sub is server-wide, whatever the DB number, so the channel names
    the key space it is about; same payload as NOTIFY (`checkpoints.checkpoint_payload`)."""
    return f"{root}:ckpt:db{db}"


def redis_channel_for_url(url: str) -> str:
    """The checkpoint channel of the Redis DB that `url` names."""
    db = parse_url(url).get("db", 0)  # type: ignore[no-untyped-call]
    return redis_checkpoint_channel(int(db or 0))


@dataclass(frozen=True)
class RedisLayout:
    """Key names: `<root>:{<model>:v<k>}:<key>`."""

    root: str = "rm"

    BOOKKEEPING = ("ckpt:", "seq:", "retried:")

    def prefix(self, name: str, version: int) -> str:
        return f"{self.root}:{{{name}:v{version}}}:"

    def checkpoint_key(self, name: str, version: int, context: str) -> str:
        return f"{self.prefix(name, version)}ckpt:{context}"

    def stream_seq_key(self, name: str, version: int, context: str) -> str:
        return f"{self.prefix(name, version)}seq:{context}"

    def partition_checkpoint_key(
        self, name: str, version: int, context: str, partition: int
    ) -> str:
        """A projector worker's checkpoint of one `pNN` partition."""
        return f"{self.checkpoint_key(name, version, context)}:p{partition:02d}"

    def partition_stream_seq_key(
        self, name: str, version: int, context: str, partition: int
    ) -> str:
        return f"{self.stream_seq_key(name, version, context)}:p{partition:02d}"

    def partition_epoch_key(self, name: str, version: int, context: str, partition: int) -> str:
        """The lease epoch that last wrote the partition's checkpoint (the fence)."""
        return f"{self.partition_checkpoint_key(name, version, context, partition)}:epoch"

    def retried_key(self, name: str, version: int, context: str, position: int) -> str:
        return f"{self.prefix(name, version)}retried:{context}:{position}"

    def channel(self, db: int) -> str:
        """Pub/sub channel of checkpoint moves in Redis DB `db`: `<root>:ckpt:db<n>`."""
        return redis_checkpoint_channel(db, self.root)
