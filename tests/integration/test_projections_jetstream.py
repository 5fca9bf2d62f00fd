"""The stack feed: durable JetStream pull consumers into Redis and PostgreSQL read models.

Each test works in a stream namespace of its own on the shared NATS server and deletes its
streams afterwards; the read models live under a Redis key root and a scratch database of their
own (tests.support.projections).
"""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, DeliverPolicy

from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.jetstream import ContextStream
from projections.catchup import catch_up
from projections.consumers import ConsumerOptions, ConsumerRunner, SequenceGap, consumer_name
from projections.engine import Engine
from tests.support.dumps import dump_read_models
from tests.support.nats import (
    create_stream,
    publish,
    require_nats,
    with_js,
)
from tests.support.projections import (
    FAST,
    ReadSide,
    Scenario,
    expected_dump,
)

CONTEXTS = ("users", "orders")
OPTIONS = ConsumerOptions(batch_size=8, fetch_timeout=0.2, ack_wait=5, max_deliver=5, pauses=(0.1,))


@pytest.fixture
def nats_url() -> str:
    return require_nats()


async def drain(runner: ConsumerRunner, subscription: Any) -> int:
    """Step until a fetch comes back empty; the number of messages fetched."""
    fetched = 0
    while count := await runner.step(subscription):
        fetched += count
    return fetched


def runners(
    js: JetStreamContext, side: ReadSide, streams: dict[str, ContextStream], **kwargs: Any
) -> list[ConsumerRunner]:
    return [
        ConsumerRunner(js, Engine(target, FAST), streams[context], OPTIONS, **kwargs)
        for target in side.targets
        for context in target.projection.contexts
        if context in CONTEXTS  # the scenario's: the other contexts have no events here
    ]


async def run_until_caught_up(
    consumers: list[ConsumerRunner], scenario: Scenario, seconds: float = 20
) -> None:
    heads = {context: scenario.envelopes(context)[-1].position for context in CONTEXTS}
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(stopping)) for runner in consumers]
    try:
        async with asyncio.timeout(seconds):
            while any(r.checkpoint.position < heads[r.context] for r in consumers):
                await asyncio.sleep(0.05)
    finally:
        stopping.set()
        await asyncio.gather(*tasks)


async def setup(
    js: JetStreamContext, streams: dict[str, ContextStream], scenario: Scenario
) -> None:
    for context, stream in streams.items():
        await create_stream(js, stream)
        await publish(js, stream, scenario.envelopes(context))


def test_consumers_fold_the_streams_into_the_read_models_and_ack_after_commit(
    nats_url: str,
    streams: dict[str, ContextStream],
    scenario: Scenario,
    side: ReadSide,
    tmp_path: Path,
) -> None:
    async def work(js: JetStreamContext) -> None:
        await setup(js, streams, scenario)
        consumers = runners(js, side, streams)
        await run_until_caught_up(consumers, scenario)

        for runner in consumers:
            stream = streams[runner.context]
            info = await js.consumer_info(
                stream.name, consumer_name(runner.engine.projection, runner.context)
            )
            last = (await js.stream_info(stream.name)).state.last_seq
            assert info.config.durable_name == runner.name
            assert runner.name == f"proj_{runner.engine.projection.name}_v1_{runner.context}"
            assert info.config.filter_subject == stream.subjects
            assert info.config.ack_policy == AckPolicy.EXPLICIT
            assert info.config.max_ack_pending == OPTIONS.batch_size
            assert info.config.max_deliver == OPTIONS.max_deliver
            assert info.config.ack_wait == OPTIONS.ack_wait
            assert info.num_ack_pending == 0 and info.num_pending == 0
            assert info.delivered.stream_seq == last
            assert runner.engine.target.checkpoint(runner.context).stream_seq == last

    with_js(nats_url, work)
    assert dump_read_models(side.targets) == expected_dump(scenario, tmp_path)


def test_a_restart_recreates_each_consumer_after_its_checkpoint_and_new_events_flow(
    nats_url: str,
    streams: dict[str, ContextStream],
    scenario: Scenario,
    side: ReadSide,
    tmp_path: Path,
) -> None:
    async def work(js: JetStreamContext) -> None:
        await setup(js, streams, scenario)
        await run_until_caught_up(runners(js, side, streams), scenario)
        last = {c: (await js.stream_info(s.name)).state.last_seq for c, s in streams.items()}

        ctx = CommandContext()
        ada = scenario.users["ada"]
        scenario.services.application(UsersService).rename(ctx, ada, "Countess Lovelace")
        order = scenario.services.application(OrdersService).create_order(ctx, ada, "EUR").id
        for context in CONTEXTS:
            await publish(
                js, streams[context], scenario.envelopes(context, after=_head(side, context))
            )

        restarted = runners(js, side, streams)
        for runner in restarted:
            subscription = await runner.attach()
            await subscription.unsubscribe()
            info = await js.consumer_info(runner.stream.name, runner.name)
            assert info.config.deliver_policy == DeliverPolicy.BY_START_SEQUENCE
            assert info.config.opt_start_seq == last[runner.context] + 1
            assert info.num_pending == 1  # the one new event of its context, nothing stale
        await run_until_caught_up(restarted, scenario)
        assert order

    with_js(nats_url, work)
    assert dump_read_models(side.targets) == expected_dump(scenario, tmp_path)


def _head(side: ReadSide, context: str) -> int:
    return min(
        t.checkpoint(context).position for t in side.targets if context in t.projection.contexts
    )


def test_redelivery_from_an_older_sequence_and_naks_change_nothing(
    nats_url: str,
    streams: dict[str, ContextStream],
    scenario: Scenario,
    side: ReadSide,
    tmp_path: Path,
) -> None:
    async def work(js: JetStreamContext) -> None:
        await setup(js, streams, scenario)
        consumers = runners(js, side, streams)
        # Nak the first batch of every consumer before anything is applied: redelivered later.
        for runner in consumers:
            subscription = await runner.attach()
            for msg in await subscription.fetch(OPTIONS.batch_size, timeout=2):
                await msg.nak()
            await subscription.unsubscribe()
        await run_until_caught_up(consumers, scenario)
        before = dump_read_models(side.targets)

        # Force every message to be delivered again: each consumer recreated at sequence 1.
        for runner in consumers:
            subscription = await runner.attach(start=1)
            delivered = await drain(runner, subscription)
            await subscription.unsubscribe()
            assert delivered == len(scenario.envelopes(runner.context))
        assert dump_read_models(side.targets) == before

    with_js(nats_url, work)
    assert dump_read_models(side.targets) == expected_dump(scenario, tmp_path)


def test_a_message_dropped_after_max_deliver_makes_the_consumer_reattach(
    nats_url: str,
    streams: dict[str, ContextStream],
    scenario: Scenario,
    side: ReadSide,
    tmp_path: Path,
) -> None:
    """A batch held past ack_wait with max_deliver=1 is never redelivered: the next fetch starts
    after a hole, which the runner must not skip over."""
    options = ConsumerOptions(
        batch_size=4, fetch_timeout=0.2, ack_wait=1, max_deliver=1, pauses=(0.1,)
    )

    async def work(js: JetStreamContext) -> None:
        await setup(js, streams, scenario)
        target = side.target("orders")
        runner = ConsumerRunner(js, Engine(target, FAST), streams["orders"], options)
        subscription = await runner.attach()
        lost = await subscription.fetch(options.batch_size, timeout=2)  # never acked
        assert [m.metadata.sequence.stream for m in lost] == [1, 2, 3, 4]
        await asyncio.sleep(options.ack_wait + 0.5)
        with pytest.raises(SequenceGap, match="expected sequence 1, got 5"):
            await runner.step(subscription)
        await subscription.unsubscribe()
        assert target.checkpoint("orders").position == 0

        stopping = asyncio.Event()
        task = asyncio.create_task(runner.run(stopping))
        head = scenario.envelopes("orders")[-1].position
        async with asyncio.timeout(20):
            while runner.checkpoint.position < head:
                await asyncio.sleep(0.05)
        stopping.set()
        await task

    with_js(nats_url, work)
    assert dump_read_models([side.target("orders")]) == {
        "orders": expected_dump(scenario, tmp_path)["orders"]
    }


def test_when_the_stream_lost_old_messages_the_read_model_catches_up_from_the_store(
    nats_url: str,
    streams: dict[str, ContextStream],
    scenario: Scenario,
    side: ReadSide,
    tmp_path: Path,
) -> None:
    async def work(js: JetStreamContext) -> None:
        for context, stream in streams.items():
            await create_stream(js, stream, max_msgs=5)  # keeps only the last five
            await publish(js, stream, scenario.envelopes(context))
        backfilled: list[tuple[str, int]] = []

        def backfill(engine: Engine, context: str) -> int:
            read = catch_up(scenario.source(context), context, [engine])
            backfilled.append((context, read))
            return read

        consumers = runners(js, side, streams, backfill=backfill)
        await run_until_caught_up(consumers, scenario)
        assert len(backfilled) == len(consumers)
        for runner in consumers:
            info = await js.consumer_info(runner.stream.name, runner.name)
            first = (await js.stream_info(runner.stream.name)).state.first_seq
            assert first > 1
            assert info.config.opt_start_seq == first

    with_js(nats_url, work)
    assert dump_read_models(side.targets) == expected_dump(scenario, tmp_path)


def test_an_unreadable_message_is_terminated_and_the_rest_flows(
    nats_url: str,
    streams: dict[str, ContextStream],
    scenario: Scenario,
    side: ReadSide,
    tmp_path: Path,
) -> None:
    async def work(js: JetStreamContext) -> None:
        stream = streams["users"]
        await create_stream(js, stream)
        envelopes = scenario.envelopes("users")
        await publish(js, stream, envelopes[:2])
        await js.publish(f"{stream.subject_root}.UserProfile.Garbage.p00", b"not json")
        await publish(js, stream, envelopes[2:])
        target = side.target("users_directory")
        runner = ConsumerRunner(js, Engine(target, FAST), stream, OPTIONS)
        subscription = await runner.attach()
        await drain(runner, subscription)
        await subscription.unsubscribe()
        assert runner.checkpoint.position == envelopes[-1].position
        info = await js.consumer_info(stream.name, runner.name)
        assert info.num_ack_pending == 0

    with_js(nats_url, work)
    expected = expected_dump(scenario, tmp_path)["users_directory"]
    assert dump_read_models([side.target("users_directory")])["users_directory"] == expected
