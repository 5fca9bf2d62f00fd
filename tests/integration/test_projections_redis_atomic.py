"""In Redis an event applies whole or not at all: an operation Redis would refuse (a key of
another type, a field that is not an integer, an increment beyond 64 bits, a list field that
holds no JSON list) parks the event with nothing of it written, in a batch and in the retry of
its dead letter, so once the data is repaired the retry counts it exactly once."""

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from eventlog.envelope import EventEnvelope
from projections.admin import DeadLetterAdmin
from projections.document_ops import (
    AppendToList,
    Bind,
    IncrementField,
    IncrementScore,
    Op,
    RemoveFromList,
    SetFields,
    Var,
)
from projections.engine import Engine
from projections.model import Message, OpsProjection
from projections.redis_target import RedisDocumentTarget
from readmodels.catalog import ReadModel
from tests.support.dumps import dump_redis_documents
from tests.support.projection_doubles import envelope
from tests.support.projections import FAST, read_side

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
COUNT = IncrementField("tally", "events", 1)
"""What every event of these tests does first: a write that must not outlive a refusal."""

Command = tuple[str, ...]
"""A Redis command written by hand; its second word is a document key (without the prefix)."""


class ScriptedOps(OpsProjection):
    """Runs the operations a test gives for each position."""

    read_model = ReadModel("scripted_ops", ("orders",), "documents")

    def __init__(self, by_position: dict[int, Sequence[Op]]) -> None:
        self.by_position = by_position

    def operations(self, event: EventEnvelope) -> Sequence[Op]:
        return self.by_position.get(event.position, [])


@dataclass(frozen=True)
class Refusal:
    """Event 2 does `ops` on data broken by `corrupt` and is refused with `error`; `repair`
    mends the data (a clean run starts from it)."""

    ops: tuple[Op, ...]
    corrupt: tuple[Command, ...]
    repair: tuple[Command, ...]
    error: str


REFUSALS = {
    "a hash write to a sorted set": Refusal(
        (COUNT, SetFields("order:1", {"status": "paid"})),
        corrupt=(("ZADD", "order:1", "1", "status"),),
        repair=(("DEL", "order:1"),),
        error="WRONGTYPE",
    ),
    "a first write, to a sorted set, that Redis refuses itself": Refusal(
        (SetFields("order:1", {"status": "paid"}), COUNT),
        corrupt=(("ZADD", "order:1", "1", "status"),),
        repair=(("DEL", "order:1"),),
        error="WRONGTYPE",
    ),
    "a score increment on a hash": Refusal(
        (COUNT, IncrementScore("top:EUR", "ada", 500)),
        corrupt=(("HSET", "top:EUR", "ada", "500"),),
        repair=(("DEL", "top:EUR"),),
        error="WRONGTYPE",
    ),
    "an increment of a field that is not an integer": Refusal(
        (COUNT, IncrementField("stats:ada", "orders", 1)),
        corrupt=(("HSET", "stats:ada", "orders", "07"),),
        repair=(("HSET", "stats:ada", "orders", "7"),),
        error="not an integer",
    ),
    "an increment past the largest 64-bit integer": Refusal(
        (COUNT, IncrementField("stats:ada", "spent", 1)),
        corrupt=(("HSET", "stats:ada", "spent", str(INT64_MAX)),),
        repair=(("HSET", "stats:ada", "spent", "0"),),
        error="overflow",
    ),
    "a decrement past the smallest 64-bit integer": Refusal(
        (COUNT, IncrementField("stats:ada", "spent", -1)),
        corrupt=(("HSET", "stats:ada", "spent", str(INT64_MIN)),),
        repair=(("HSET", "stats:ada", "spent", "0"),),
        error="overflow",
    ),
    "two increments of one field that overflow together": Refusal(
        (COUNT, IncrementField("stats:ada", "spent", 1), IncrementField("stats:ada", "spent", 1)),
        corrupt=(("HSET", "stats:ada", "spent", str(INT64_MAX - 1)),),
        repair=(("HSET", "stats:ada", "spent", "0"),),
        error="overflow",
    ),
    "a bound amount that is not an integer": Refusal(
        (
            Bind("order:1", ("paid",)),
            COUNT,
            IncrementField("stats:ada", "spent", Var("paid")),
            IncrementScore("top:EUR", "ada", Var("paid")),
        ),
        corrupt=(("HSET", "order:1", "paid", "5.00"),),
        repair=(("HSET", "order:1", "paid", "500"),),
        error="not an integer",
    ),
    "a bound amount beyond 64 bits": Refusal(
        (Bind("order:1", ("paid",)), COUNT, IncrementScore("top:EUR", "ada", Var("paid"))),
        corrupt=(("HSET", "order:1", "paid", str(INT64_MAX + 1)),),
        repair=(("HSET", "order:1", "paid", "500"),),
        error="not an integer",
    ),
    "a push onto a field holding no JSON list": Refusal(
        (COUNT, AppendToList("user:ada", "hobbies", "Go")),
        corrupt=(("HSET", "user:ada", "hobbies", '{"Chess": 1}'),),
        repair=(("HSET", "user:ada", "hobbies", '["Chess"]'),),
        error="JSON list",
    ),
    "a pull from a field holding no JSON": Refusal(
        (COUNT, RemoveFromList("user:ada", "hobbies", "Chess")),
        corrupt=(("HSET", "user:ada", "hobbies", "Chess"),),
        repair=(("HSET", "user:ada", "hobbies", '["Chess"]'),),
        error="JSON list",
    ),
}


@dataclass
class Model:
    """A ScriptedOps read model in Redis, its dead letters in a scratch database."""

    target: RedisDocumentTarget
    redis: Redis
    admin: DeadLetterAdmin

    @property
    def prefix(self) -> str:
        p = self.target.projection
        return self.target.layout.prefix(p.name, p.version)

    def run(self, commands: Sequence[Command]) -> None:
        for name, key, *args in commands:
            # redis-py leaves execute_command unannotated
            self.redis.execute_command(name, self.prefix + key, *args)  # type: ignore[no-untyped-call]

    def documents(self) -> dict[str, Any]:
        return dump_redis_documents(self.redis, self.prefix)


OpenModel = Callable[[dict[int, Sequence[Op]], str], Model]
"""Opens a model running the given operations per position, named for its scratch database."""


@pytest.fixture
def models(tmp_path: Path) -> Iterator[OpenModel]:
    with ExitStack() as stack:

        def open_model(by_position: dict[int, Sequence[Op]], name: str) -> Model:
            side = stack.enter_context(read_side("stack", tmp_path, name=name))
            side = side.with_projections([ScriptedOps(by_position)])
            [target] = side.targets
            assert isinstance(target, RedisDocumentTarget) and side.redis is not None
            return Model(target, side.redis, DeadLetterAdmin(side.db, side.targets))

        yield open_model


def _messages(count: int) -> list[Message]:
    return [Message(envelope("Created", {}, position=p)) for p in range(1, count + 1)]


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
def test_an_event_redis_would_refuse_in_part_writes_nothing_and_its_retry_counts_once(
    models: OpenModel, refusal: Refusal
) -> None:
    """Event 2 counts itself, then does what Redis refuses: the batch parks it with nothing of
    it written (its count neither), and so does a retry before the data is repaired; the
    retry after the repair applies it once, as if the data had never been broken."""
    ops = {1: [COUNT], 2: refusal.ops, 3: [COUNT]}
    model = models(ops, "broken")
    model.run(refusal.corrupt)
    broken = model.documents()

    outcome = Engine(model.target, FAST).handle("orders", _messages(3))

    assert (outcome.applied, outcome.parked) == (2, 1)
    assert model.target.checkpoint("orders").position == 3
    assert model.documents() == broken | {"tally": {"events": "2"}}
    [letter] = model.admin.listing()
    assert (letter.position, letter.attempts) == (2, 1)
    assert refusal.error in letter.error

    again = model.admin.retry(letter.id)  # the data is still broken: nothing more is written
    assert again.failed is not None and again.failed.attempts == 2
    assert refusal.error in again.failed.error
    assert model.documents() == broken | {"tally": {"events": "2"}}

    model.run(refusal.repair)
    assert model.admin.retry(letter.id).failed is None
    clean = models(ops, "clean")
    clean.run(refusal.repair)
    Engine(clean.target, FAST).handle("orders", _messages(3))
    assert model.documents() == clean.documents()
    assert model.documents()["tally"] == {"events": "3"}


def test_an_event_is_checked_against_what_its_own_earlier_writes_leave(models: OpenModel) -> None:
    """The checks of an event's operations see the values its operations before them write:
    a field it sets holds an integer for its increment, increments of one field add up exactly
    to the 64-bit limits (doubles could not tell them from an overflow), a list it pushes to is
    the one it pulls from."""
    below_max, above_min = str(INT64_MAX - 2), str(INT64_MIN + 2)
    model = models(
        {
            1: [
                SetFields("stats:ada", {"orders": "5"}),
                IncrementField("stats:ada", "orders", 1),
                IncrementField("stats:ada", "high", 1),
                IncrementField("stats:ada", "high", 1),
                IncrementField("stats:ada", "low", -2),
                IncrementField("stats:ada", "past_doubles", 1),
                IncrementScore("top:EUR", "ada", INT64_MAX),
                AppendToList("user:ada", "hobbies", "Go"),
                RemoveFromList("user:ada", "hobbies", "Chess"),
            ]
        },
        "sums",
    )
    model.run(
        [
            ("HSET", "stats:ada", "orders", "many", "high", below_max, "low", above_min),
            ("HSET", "stats:ada", "past_doubles", str(2**53 + 1)),
            ("HSET", "user:ada", "hobbies", '["Chess"]'),
        ]
    )

    outcome = Engine(model.target, FAST).handle("orders", _messages(1))

    assert (outcome.applied, outcome.parked) == (1, 0)
    assert model.documents() == {
        "stats:ada": {
            "high": str(INT64_MAX),
            "low": str(INT64_MIN),
            "orders": "6",
            "past_doubles": str(2**53 + 2),
        },
        "top:EUR": [["ada", 2**63]],  # a score is a double
        "user:ada": {"hobbies": '["Go"]'},
    }


def test_an_event_writing_one_key_as_a_hash_and_a_sorted_set_writes_neither(
    models: OpenModel,
) -> None:
    model = models(
        {1: [COUNT, SetFields("top:EUR", {"a": "1"}), IncrementScore("top:EUR", "ada", 1)]},
        "both",
    )

    outcome = Engine(model.target, FAST).handle("orders", _messages(1))

    assert (outcome.applied, outcome.parked) == (0, 1)
    assert model.documents() == {}
    [letter] = model.admin.listing()
    assert "WRONGTYPE" in letter.error and "top:EUR" in letter.error
