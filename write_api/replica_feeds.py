"""The feeds of the replicas and reactions of the contexts a write service serves, for its
lifetime, and their metrics.

A replica whose upstream is served in the same process is caught up at each lookup
(`eventlog.stores.follow_log`), a reaction on a thread woken by the upstream's commits
(`eventlog.stores.react_to_log`). Otherwise, in the stack mode, both are fed from the
upstream's JetStream stream; in the embedded mode, from the upstream's SQLite file.
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
from eventlog.reactions import Reaction, ReactionIntake
from eventlog.replica_feeds import ReplicaFeed
from eventlog.replica_stream import StreamFeed
from eventlog.replicas import Intake, Replica, ReplicaIntake, ReplicaStore
from eventlog.stores import (
    Services,
    follow_log,
    open_store_for_reading,
    react_to_log,
)


def _stream_feed(settings: Settings, follower: str, intake: Intake, what: str) -> StreamFeed:
    name = f"strata-{follower}-{what}-of-{intake.upstream}"
    stream = context_stream(intake.upstream, settings)
    return StreamFeed(follower, intake, stream, partial(connect, settings, name=name))


def _replica_feed(
    settings: Settings, services: Services, follower: str, replica: Replica, stack: AsyncExitStack
) -> ReplicaFeed:
    if settings.mode == "stack":
        intake = ReplicaIntake(cast(ReplicaStore, services[follower].recorder), replica)
        return _stream_feed(settings, follower, intake, "replica")
    upstream = open_store_for_reading(settings, replica.upstream, REGISTRY)
    stack.callback(upstream.close)
    return follow_log(services[follower], replica, upstream)


def _reaction_feed(
    settings: Settings,
    services: Services,
    follower: str,
    reaction: Reaction,
    stack: AsyncExitStack,
) -> ReplicaFeed:
    application = services[follower]
    if settings.mode == "stack":
        store = cast(ReplicaStore, application.recorder)
        intake = ReactionIntake(application, store, reaction)
        return _stream_feed(settings, follower, intake, "reaction")
    upstream = open_store_for_reading(settings, reaction.upstream, REGISTRY)
    stack.callback(upstream.close)
    return react_to_log(application, reaction, upstream)


@asynccontextmanager
async def running_feeds(
    settings: Settings, services: Services, contexts: Registry
) -> AsyncIterator[dict[tuple[str, str], ReplicaFeed]]:
    """Every replica's and reaction's feed, running until the block ends; the replicas' feeds by
    (follower, upstream), for the commands that wait for one."""
    async with AsyncExitStack() as stack:
        feeds, reactions = list(services.feeds), list(services.reactions)
        for context in contexts:
            for replica in context.replicas:
                if replica.upstream not in contexts:
                    feeds.append(_replica_feed(settings, services, context.name, replica, stack))
            for reaction in context.reactions:
                if reaction.upstream not in contexts:
                    feed = _reaction_feed(settings, services, context.name, reaction, stack)
                    reactions.append(feed)
        for feed in (*feeds, *reactions):
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
