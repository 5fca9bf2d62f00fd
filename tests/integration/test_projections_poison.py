"""Poison events: parked with the later events of their aggregate while others flow; the
dead-letter API lists, shows, retries and skips them."""

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from domain.orders.service import OrdersService
from domain.service import CommandContext
from eventlog.envelope import PARTITIONS, partition_of
from projections.admin import DeadLetterAdmin, DeadLetterError
from projections.engine import Engine, RetryPolicy
from projections.model import Message
from projections.models import Orders, UserStats
from projections.retrying import RELOAD_SECONDS
from tests.support.dumps import dump_read_models
from tests.support.poison import POISON_SKU, PoisonedOrders, PoisonedUserStats, poison_scenario
from tests.support.projections import (
    FAST,
    READ_SIDES,
    ReadSide,
    Scenario,
    read_side,
)


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    with poison_scenario(tmp_path) as made:
        yield made


@pytest.fixture(params=READ_SIDES)
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadSide]:
    with read_side(request.param, tmp_path) as built:
        yield built.with_projections([PoisonedOrders(), PoisonedUserStats()])


def _engines(side: ReadSide) -> list[Engine]:
    return [Engine(target, FAST) for target in side.targets]


def _spend_the_retries(engines: list[Engine]) -> None:
    """Run the engines' scheduled retries (no pauses with FAST) until the attempts are spent."""
    for engine in engines:
        for _ in range(FAST.attempts - 1):
            engine.retry_due("orders")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _clean_dump(kind: str, scenario: Scenario, tmp_path: Path) -> dict[str, object]:
    with read_side(kind, tmp_path, name="clean") as empty:
        clean = empty.with_projections([Orders(), UserStats()])
        for engine in _engines(clean):
            engine.handle("orders", scenario.messages("orders"))
        return dump_read_models(clean.targets)


def test_a_poison_event_is_parked_with_the_rest_of_its_aggregate(
    side: ReadSide, scenario: Scenario
) -> None:
    messages = scenario.messages("orders")
    bad, good = scenario.orders["bad"], scenario.orders["good"]
    [poison] = [m for m in messages if m.envelope.data.get("sku") == POISON_SKU]
    behind = [m for m in messages if m.aggregate_id == bad and m.position > poison.position]

    engines = _engines(side)
    for engine in engines:
        outcome = engine.handle("orders", messages)
        assert (outcome.applied, outcome.parked) == (
            len(messages) - 1 - len(behind),
            1 + len(behind),
        )
        assert engine.target.checkpoint("orders").position == messages[-1].position
    _spend_the_retries(engines)

    admin = DeadLetterAdmin(side.db, side.targets)
    for name in ("orders", "user_stats"):
        letters = admin.listing(projection=name)
        assert [(dl.position, dl.aggregate_id) for dl in letters] == [
            (m.position, bad) for m in [poison, *behind]
        ]
        head, *blocked = letters
        assert head.error == "ValueError: poisoned line"
        assert head.attempts == FAST.attempts
        assert head.event_type == "Order.LineAdded"
        assert head.envelope == poison.envelope
        assert {dl.error for dl in blocked} == {f"blocked by position {poison.position}"}
        assert {dl.status for dl in letters} == {"parked"}

    dump = dump_read_models(side.targets)
    rows = {row[0]: row for row in dump["orders"]["orders"]}
    assert rows[str(good)][3:6] == ["paid", 700, 1]  # the other order flowed
    assert rows[str(bad)][3:6] == ["draft", 0, 0]  # created before the poison, then parked
    assert dump["user_stats"][f"stats:{scenario.users['ada']}"] == {
        "orders": "2",
        "spent:EUR": "700",
    }


def test_later_batches_keep_parking_the_aggregate_until_it_is_retried(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    ctx = CommandContext()
    bad = scenario.orders["bad"]
    engines = _engines(side)
    for engine in engines:
        engine.handle("orders", scenario.messages("orders"))
    _spend_the_retries(engines)
    scenario.services.application(OrdersService).mark_paid(ctx, bad)
    later = scenario.messages("orders")[-1:]
    for engine in engines:
        assert engine.handle("orders", later).parked == 1

    admin = DeadLetterAdmin(side.db, side.targets)
    head, *blocked = admin.listing(projection="orders")
    with pytest.raises(DeadLetterError, match=f"blocked by {head.id}"):
        admin.retry(blocked[0].id)

    still = admin.retry(head.id)  # the projection still raises: nothing moves
    assert still.retried == []
    assert still.failed is not None and still.failed.id == head.id
    assert still.failed.attempts == FAST.attempts + 1
    assert admin.show(head.id).status == "parked"

    for target in side.targets:
        target.projection.poisoned = False  # type: ignore[attr-defined]
    results = [
        admin.retry(admin.listing(projection=name)[0].id) for name in ("orders", "user_stats")
    ]

    assert [len(r.retried) for r in results] == [1 + len(blocked)] * 2
    assert all(r.failed is None for r in results)
    assert admin.listing() == []
    assert {dl.status for dl in admin.listing(status="retried")} == {"retried"}
    assert dump_read_models(side.targets) == _clean_dump(side.kind, scenario, tmp_path)
    # Retrying is exactly once: nothing is left to retry, and the checkpoints did not move.
    with pytest.raises(DeadLetterError, match="retried, not parked"):
        admin.retry(head.id)
    for engine in engines:
        assert engine.handle("orders", scenario.messages("orders")).applied == 0


def test_a_failing_event_holds_back_only_its_aggregate_and_is_retried_on_schedule(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    """Issue 7, item 1: while a poison event waits for its next attempt, the other aggregates'
    events apply in the same batch and in later ones; the poisoned aggregate's later events
    wait behind it, and once the projection recovers the scheduled retry applies them in order."""
    messages = scenario.messages("orders")
    bad, good = scenario.orders["bad"], scenario.orders["good"]
    cut = next(i for i, m in enumerate(messages) if m.envelope.data.get("sku") == "G") + 1
    clock = Clock()
    policy = RetryPolicy(delays=(30.0, 60.0))
    engines = [Engine(target, policy, clock=clock) for target in side.targets]
    admin = DeadLetterAdmin(side.db, side.targets)

    for batch in (messages[:cut], messages[cut:]):
        for engine in engines:
            engine.handle("orders", batch)
            assert engine.target.checkpoint("orders").position == batch[-1].position
            assert engine.retry_due("orders") == 0  # not due yet: nothing waited for it
    rows = {row[0]: row for row in dump_read_models(side.targets)["orders"]["orders"]}
    assert rows[str(good)][3:6] == ["paid", 700, 1]
    letters = admin.listing(projection="orders")
    assert [(dl.aggregate_id, dl.attempts) for dl in letters] == [(bad, 1), (bad, 0), (bad, 0)]

    clock.now += 30
    for engine in engines:
        assert engine.retry_due("orders") == 0  # still poisoned: a second failed attempt
    assert admin.show(letters[0].id).attempts == 2

    for target in side.targets:
        target.projection.poisoned = False  # type: ignore[attr-defined]
    clock.now += 59
    assert [engine.retry_due("orders") for engine in engines] == [0] * len(engines)
    clock.now += 1
    assert [engine.retry_due("orders") for engine in engines] == [3] * len(engines)

    assert admin.listing() == []
    assert dump_read_models(side.targets) == _clean_dump(side.kind, scenario, tmp_path)
    for engine in engines:
        assert engine.target.checkpoint("orders").position == messages[-1].position


def test_an_event_parked_behind_a_head_retried_meanwhile_is_retried_at_the_next_reading(
    side: ReadSide, scenario: Scenario, tmp_path: Path
) -> None:
    """A batch reads the parked heads, then a retry of the head (a person's, or another
    partition's engine) applies the chain, then the batch commits the aggregate's new event as
    blocked by that head: nothing parks it any more, and no attempt was made. The engine's
    next reading of the dead letters retries it."""
    bad = scenario.orders["bad"]
    clock = Clock()
    engine = Engine(next(t for t in side.targets if t.projection.name == "orders"), FAST, clock)
    engine.handle("orders", scenario.messages("orders"))
    for _ in range(FAST.attempts - 1):
        engine.retry_due("orders")
    admin = DeadLetterAdmin(side.db, side.targets)
    [head, *_] = admin.listing(projection="orders")
    engine.target.projection.poisoned = False  # type: ignore[attr-defined]
    scenario.services.application(OrdersService).mark_paid(CommandContext(), bad)
    target, read_heads = engine.target, engine.target.parked_heads

    def heads_then_a_retry(context: str) -> dict[uuid.UUID, int]:
        heads = read_heads(context)
        assert admin.retry(head.id).failed is None
        return heads

    target.parked_heads = heads_then_a_retry  # type: ignore[method-assign]
    assert engine.handle("orders", scenario.messages("orders")[-1:]).parked == 1
    target.parked_heads = read_heads  # type: ignore[method-assign]
    [orphan] = admin.listing(projection="orders")
    assert orphan.attempts == 0

    clock.now += RELOAD_SECONDS
    assert engine.retry_due("orders") == 1

    assert admin.listing(projection="orders") == []
    rows = {row[0]: row for row in dump_read_models([target])["orders"]["orders"]}
    assert rows[str(bad)][3] == "paid"


def test_a_partition_engine_retries_only_the_parked_heads_of_its_partition(
    side: ReadSide, scenario: Scenario
) -> None:
    """A projector worker's engine is fed one partition's events: the heads of the other
    partitions are another worker's to retry."""
    bad = scenario.orders["bad"]
    target = next(t for t in side.targets if t.projection.name == "orders")
    Engine(target, FAST).handle("orders", scenario.messages("orders"))
    target.projection.poisoned = False  # type: ignore[attr-defined]
    admin = DeadLetterAdmin(side.db, side.targets)
    parked = len(admin.listing(projection="orders"))

    elsewhere = (partition_of(bad) + 1) % PARTITIONS
    assert Engine(target, FAST, partition=elsewhere).retry_due("orders") == 0
    assert len(admin.listing(projection="orders")) == parked
    assert Engine(target, FAST, partition=partition_of(bad)).retry_due("orders") == parked
    assert admin.listing(projection="orders") == []


def test_skipping_the_poison_lets_the_next_event_be_retried(
    side: ReadSide, scenario: Scenario
) -> None:
    engines = _engines(side)
    for engine in engines:
        engine.handle("orders", scenario.messages("orders"))
    _spend_the_retries(engines)
    admin = DeadLetterAdmin(side.db, side.targets)
    head, second, *rest = admin.listing(projection="orders")

    assert admin.skip(head.id).status == "skipped"
    result = admin.retry(second.id)

    assert result.retried == [second.id, *(dl.id for dl in rest)]
    rows = {row[0]: row for row in dump_read_models(side.targets)["orders"]["orders"]}
    # Without the skipped 5.00 line: the B line (2 x 1.00), then placed with the event's total.
    bad = rows[str(scenario.orders["bad"])]
    assert bad[3] == "placed" and bad[5] == 1
    with pytest.raises(DeadLetterError, match="no dead letter"):
        admin.show(10_000)


def test_an_unresolvable_reference_is_parked_and_later_events_still_apply(
    side: ReadSide, scenario: Scenario
) -> None:
    """A payment of an order the projection never saw: the bind finds nothing. In Redis the
    failing Lua call sits mid-pipeline; the chain keeps the calls after it from moving the
    checkpoint past it, so it is retried alone and parked, and the rest still applies."""
    good = scenario.orders["good"]
    messages = [m for m in scenario.messages("orders") if m.aggregate_id == good]
    [paid] = [m.envelope for m in messages if m.envelope.event_type == "Paid"]
    last = scenario.messages("orders")[-1].position
    stray = replace(paid, aggregate_id=uuid.uuid4(), position=last + 1)
    after = replace(messages[0].envelope, aggregate_id=uuid.uuid4(), position=last + 2)
    target = next(t for t in side.targets if t.projection.name == "user_stats")
    target.projection.poisoned = False  # type: ignore[attr-defined]

    outcome = Engine(target, FAST).handle("orders", [*messages, Message(stray), Message(after)])

    assert (outcome.applied, outcome.parked) == (len(messages) + 1, 1)
    [letter] = DeadLetterAdmin(side.db, side.targets).listing(projection="user_stats")
    assert letter.position == stray.position
    assert letter.error.startswith("UnresolvedReference")
    assert f"order:{stray.aggregate_id}" in letter.error
    assert target.checkpoint("orders").position == after.position
    stats = dump_read_models([target])["user_stats"]
    assert stats[f"stats:{scenario.users['ada']}"] == {"orders": "2", "spent:EUR": "700"}
    assert stats[f"order:{after.aggregate_id}"]["currency"] == "EUR"
