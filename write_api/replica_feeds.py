"""The feeds of the replicas of the contexts a write service serves, for its lifetime, and their
metrics.

A replica whose upstream is served in the same process is caught up at each lookup
(`eventlog.stores.follow_log`). Otherwise, in the stack mode, it is fed from the upstream's
JetStream stream; in the embedded mode, from the upstream's SQLite file, read directly.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import cast

from prometheus_client.core import GaugeMetricFamily, Metric

from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings
from eventlog.jetstream import connect, context_stream
from eventlog.replica_feeds import ReplicaFeed
from eventlog.replica_stream import StreamFeed
from eventlog.replicas import Replica, ReplicaIntake, ReplicaStore
from eventlog.stores import Services, follow_log, open_store_for_reading


def _feed_for(
    settings: Settings, services: Services, follower: str, replica: Replica, stack: AsyncExitStack
) -> ReplicaFeed:
    if settings.mode == "stack":
        intake = ReplicaIntake(cast(ReplicaStore, services[follower].recorder), replica)
        name = f"strata-{follower}-replica-of-{replica.upstream}"
        stream = context_stream(replica.upstream, settings)
        return StreamFeed(follower, intake, stream, partial(connect, settings, name=name))
    upstream = open_store_for_reading(settings, replica.upstream, REGISTRY)
    stack.callback(upstream.close)
    return follow_log(services[follower], replica, upstream)


@asynccontextmanager
async def running_feeds(
    settings: Settings, services: Services, contexts: Registry
) -> AsyncIterator[dict[tuple[str, str], ReplicaFeed]]:
    """Every replica's feed, by (follower, upstream), running until the block ends."""
    async with AsyncExitStack() as stack:
        feeds = list(services.feeds)
        for context in contexts:
            for replica in context.replicas:
                if replica.upstream not in contexts:
                    feeds.append(_feed_for(settings, services, context.name, replica, stack))
        for feed in feeds:
            await feed.start()
            stack.push_async_callback(feed.stop)
        yield {(feed.follower, feed.upstream): feed for feed in feeds}


class ReplicaCollector:
    """`strata_replica_position`: the last upstream position each replica has taken in."""

    def __init__(self, feeds: dict[tuple[str, str], ReplicaFeed]) -> None:
        self._feeds = feeds

    def collect(self) -> Iterator[Metric]:
        positions = GaugeMetricFamily(
            "strata_replica_position",
            "Last position of the upstream context's log taken into the replica",
            labels=["context", "upstream"],
        )
        for (follower, upstream), feed in self._feeds.items():
            positions.add_metric([follower, upstream], feed.position())
        yield positions
