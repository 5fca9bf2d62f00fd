"""The projector's feeds: one durable consumer per context serving all its projections; a
projection far behind, or failing, catches up on its own without holding the others back.

Same streams, scenario and read side as tests/integration/test_projections_jetstream.py.
"""

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy
from nats.js.errors import NotFoundError

from eventlog.jetstream import ContextStream
from projections.consumers import ConsumerOptions
from projections.engine import Engine, Target
from projections.feed import ContextFeed
from projections.model import Step
from tests.support.dumps import dump_read_models
from tests.support.nats import create_stream, publish, require_nats, with_js
from tests.support.projections import (
    FAST,
    ReadSide,
    Scenario,
    expected_dump,
)

CONTEXTS = ("users", "orders")
OPTIONS = ConsumerOptions(
    batch_size=8, fetch_timeout=0.2, ack_wait=5, max_deliver=5, pauses=(0.1,), join_lag=4
)


class FailingFirst:
    """A target whose first `failures` commits fail as a lost connection would."""

    def __init__(self, target: Target, failures: int) -> None:
        self._target = target
        self.failures = failures
        self.projection = target.projection
        self.dead_letter_db = target.dead_letter_db
        self.prepare = target.prepare
        self.checkpoint = target.checkpoint
        self.rewind = target.rewind
        self.parked_heads = target.parked_heads
        self.reapply = target.reapply

    def commit(self, context: str, steps: Sequence[Step]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("the read store is unreachable")
        self._target.commit(context, steps)


def feeds(
    js: JetStreamContext, targets: Sequence[Target], streams: dict[str, ContextStream]
) -> list[ContextFeed]:
    return [
        ContextFeed(
            js,
            [Engine(t, FAST) for t in targets if context in t.projection.contexts],
            streams[context],
            OPTIONS,
        )
        for context in CONTEXTS
    ]


async def run_until_caught_up(
    running: list[ContextFeed], heads: dict[str, int], seconds: float = 30
) -> None:
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(feed.run(stopping)) for feed in running]

    def behind() -> bool:
        return any(
            member.checkpoint.position < heads[feed.stream.context] or member.solo is not None
            for feed in running
            for member in feed.members
        )

    try:
        async with asyncio.timeout(seconds):
            while behind():
                await asyncio.sleep(0.05)
    finally:
        stopping.set()
        await asyncio.gather(*tasks)


async def setup(
    js: JetStreamContext, streams: dict[str, ContextStream], scenario: Scenario
) -> dict[str, int]:
    for context in CONTEXTS:
        await create_stream(js, streams[context])
        await publish(js, streams[context], scenario.envelopes(context))
    return {context: scenario.envelopes(context)[-1].position for context in CONTEXTS}


def test_one_consumer_per_context_feeds_every_projection_once(
    streams: dict[str, ContextStream], scenario: Scenario, side: ReadSide, tmp_path: Path
) -> None:
    async def work(js: JetStreamContext) -> None:
        heads = await setup(js, streams, scenario)
        running = feeds(js, side.targets, streams)
        await run_until_caught_up(running, heads)
        for feed in running:
            stream = streams[feed.stream.context]
            info = await js.consumer_info(stream.name, f"proj_{feed.stream.context}_all")
            assert info.config.ack_policy == AckPolicy.ALL
            assert info.config.filter_subject == stream.subjects
            assert info.num_ack_pending == 0 and info.num_pending == 0
            for member in feed.members:  # no consumer of its own left behind
                with pytest.raises(NotFoundError):
                    await js.consumer_info(
                        stream.name,
                        f"proj_{member.engine.projection.name}_v1_{feed.stream.context}",
                    )

    with_js(require_nats(), work)
    assert dump_read_models(side.targets) == expected_dump(scenario, tmp_path)


def test_a_projection_far_behind_catches_up_alone_and_joins(
    streams: dict[str, ContextStream], scenario: Scenario, side: ReadSide, tmp_path: Path
) -> None:
    others = side.targets[1:]  # the first one is added later

    async def work(js: JetStreamContext) -> None:
        heads = await setup(js, streams, scenario)
        await run_until_caught_up(feeds(js, others, streams), heads)
        running = feeds(js, side.targets, streams)
        went_solo = asyncio.Event()

        async def watch() -> None:
            while not any(m.solo for f in running for m in f.members):
                await asyncio.sleep(0.01)
            went_solo.set()

        watcher = asyncio.create_task(watch())
        await run_until_caught_up(running, heads)
        watcher.cancel()
        assert went_solo.is_set()

    with_js(require_nats(), work)
    assert dump_read_models(side.targets) == expected_dump(scenario, tmp_path)


def test_a_failing_projection_catches_up_on_its_own_and_ends_exact(
    streams: dict[str, ContextStream], scenario: Scenario, side: ReadSide, tmp_path: Path
) -> None:
    index = next(i for i, t in enumerate(side.targets) if "orders" in t.projection.contexts)
    failing = FailingFirst(side.targets[index], failures=3)
    targets = [failing if i == index else t for i, t in enumerate(side.targets)]

    async def work(js: JetStreamContext) -> None:
        heads = await setup(js, streams, scenario)
        await run_until_caught_up(feeds(js, targets, streams), heads)

    with_js(require_nats(), work)
    assert failing.failures == 0
    assert dump_read_models(side.targets) == expected_dump(scenario, tmp_path)
