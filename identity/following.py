"""The feed of the users' log into identity (`identity.profile_intake`), as every follower is
fed (`eventlog.replica_feeds`):

- the stack (`STRATA_IDENTITY_DATABASE_URL` set): the users' JetStream stream, a pull consumer
  started after the checkpoint in identity's database, made again from it after any failure or
  NATS reconnection (`eventlog.replica_stream.StreamFeed`);
- the embedded mode: the users' SQLite event store in `STRATA_DATA_DIR`, beside identity's own
  file (as `strata` keeps it), read by a thread of its own every half second
  (`eventlog.replica_feeds.DrivenTail`).

Either way a PostgreSQL, SQLite or NATS outage pauses the feed, which takes up again from the
checkpoint once they are back.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

from prometheus_client.core import GaugeMetricFamily, Metric

from eventlog.jetstream import connect, context_stream
from eventlog.log_pages import page_source
from eventlog.replica_feeds import DrivenTail, ReplicaFeed
from eventlog.replica_stream import StreamFeed
from eventlog.stores import open_store_for_reading
from identity.database import Database
from identity.profile_intake import USERS, ProfileIntake
from identity.settings import IdentitySettings

FOLLOWER = "identity"


@asynccontextmanager
async def following_users(
    settings: IdentitySettings, database: Database
) -> AsyncIterator[ReplicaFeed]:
    """The users' log followed into identity's database until the block ends."""
    async with AsyncExitStack() as stack:
        intake = ProfileIntake(database)
        feed: ReplicaFeed
        if settings.identity_mode == "stack":
            name = f"strata-{FOLLOWER}-follows-{USERS}"
            stream = context_stream(USERS, settings)
            feed = StreamFeed(FOLLOWER, intake, stream, partial(connect, settings, name=name))
        else:
            users = open_store_for_reading(settings, USERS)
            stack.callback(users.close)
            feed = DrivenTail(FOLLOWER, intake, page_source(users.recorder))
        await feed.start()
        stack.push_async_callback(feed.stop)
        yield feed


class FollowedPosition:
    """`strata_replica_position{context="identity", upstream="users"}`: the last position of
    the users' log identity has taken in (0 until the feed runs)."""

    def __init__(self) -> None:
        self.feed: ReplicaFeed | None = None

    def collect(self) -> Iterator[Metric]:
        position = GaugeMetricFamily(
            "strata_replica_position",
            "Last position of the upstream context's log taken in",
            labels=["context", "upstream"],
        )
        position.add_metric([FOLLOWER, USERS], self.feed.position() if self.feed else 0)
        yield position
