"""Pure projection logic: money and time conversions, document operations, the engine's
retry and parking decisions, the projector's settings check and lag metrics."""

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis import ResponseError
from redis.exceptions import OutOfMemoryError, ReadOnlyError

from contexts.settings import CONTEXTS, Settings
from eventlog.envelope import EventEnvelope
from projections.dead_letters import DeadLetter
from projections.document_ops import (
    AppendToList,
    Bind,
    IncrementField,
    IncrementScore,
    SetFields,
    Template,
    UnboundName,
    Var,
    check,
    encode,
    fill,
    resolve,
)
from projections.engine import Engine, Outcome, RetryPolicy
from projections.metrics import ProjectorMetrics
from projections.model import (
    Apply,
    Message,
    OpsProjection,
    Park,
    ProjectionFailed,
    Step,
    UnsupportedEvent,
)
from projections.models import TopSpenders, UserProfiles, UserStats
from projections.redis_target import is_infrastructure_reply
from projections.stack import stack_problem
from readmodels.checkpoints import Checkpoint
from readmodels.formats import cents, utc_text
from readmodels.schema import DEAD_LETTERS, create_tables
from readmodels.sql import SqlDatabase, SQLiteDatabase
from tests.support.dumps import differences

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def envelope(
    event_type: str,
    data: dict[str, object],
    *,
    aggregate: str = "Order",
    position: int = 1,
    version: int = 1,
    aggregate_id: UUID | None = None,
    schema_version: int = 1,
) -> EventEnvelope:
    return EventEnvelope(
        position=position,
        context="orders" if aggregate == "Order" else "users",
        aggregate_type=aggregate,
        aggregate_id=aggregate_id or UUID(int=position),
        aggregate_version=version,
        event_type=event_type,
        schema_version=schema_version,
        timestamp=T,
        data=data,
    )


# -- values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("12.34", 1234), ("0", 0), ("0.10", 10), ("1000000000.01", 100000000001), (5, 500)],
)
def test_amounts_become_exact_cents(amount: str | int, expected: int) -> None:
    assert cents(amount) == expected


@pytest.mark.parametrize("amount", ["0.001", "abc", "NaN", "Infinity", "1.005"])
def test_anything_but_whole_cents_is_refused(amount: str) -> None:
    with pytest.raises(ValueError, match="not"):
        cents(amount)


@given(st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False))
def test_cents_round_trip(amount: Decimal) -> None:
    assert Decimal(cents(str(amount))) / 100 == amount


def test_times_are_fixed_width_utc_text_that_sorts_like_time() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert (
        utc_text(datetime(2026, 3, 1, 14, 0, tzinfo=plus_two)) == "2026-03-01T12:00:00.000000+00:00"
    )
    earlier, later = T, T + timedelta(microseconds=1)
    assert utc_text(earlier) < utc_text(later)
    with pytest.raises(ValueError, match="naive"):
        utc_text(datetime(2026, 3, 1))


# -- document operations -------------------------------------------------------------------


def test_templates_and_variables_need_a_bind() -> None:
    check([Bind("order:1", ("user_id",)), IncrementField(Template("stats:{user_id}"), "orders", 1)])
    with pytest.raises(UnboundName, match="currency"):
        check([Bind("order:1", ("user_id",)), IncrementScore(Template("top:{currency}"), "u", 1)])
    with pytest.raises(UnboundName, match="paid_cents"):
        check([IncrementField("stats:1", "spent", Var("paid_cents", negate=True))])


@pytest.mark.parametrize(("value", "negated"), [("250", "-250"), ("-7", "7"), ("0", "0")])
def test_negated_variables_keep_integer_syntax(value: str, negated: str) -> None:
    assert resolve(Var("x", negate=True), {"x": value}) == negated
    assert resolve(Var("x"), {"x": value}) == value
    assert fill(Template("spent:{x}"), {"x": value}) == f"spent:{value}"


def test_operations_encode_as_the_json_the_lua_executor_reads() -> None:
    ops = [
        Bind("order:1", ("user_id", "currency")),
        SetFields("order:1", {"paid_cents": "5", "by": Var("user_id")}),
        IncrementField(Template("stats:{user_id}"), Template("spent:{currency}"), 5),
        IncrementScore(Template("top:{currency}"), Template("{user_id}"), Var("p", negate=True)),
        AppendToList("user:1", "hobbies", "Go"),
    ]
    assert json.loads(encode(ops)) == [
        ["bind", "order:1", "user_id", "currency"],
        ["set", "order:1", "paid_cents", "5", "by", {"var": "user_id", "neg": False}],
        ["incr", {"t": "stats:{user_id}"}, {"t": "spent:{currency}"}, "5"],
        ["zincr", {"t": "top:{currency}"}, {"t": "{user_id}"}, {"var": "p", "neg": True}],
        ["push", "user:1", "hobbies", "Go"],
    ]


def test_user_stats_attribute_payments_and_refunds_through_the_order() -> None:
    order, user = uuid4(), uuid4()
    stats = UserStats()
    created = stats.operations(
        envelope("Created", {"user_id": str(user), "currency": "EUR"}, aggregate_id=order)
    )
    paid = stats.operations(envelope("Paid", {"amount": "12.50"}, aggregate_id=order))
    refund = stats.operations(
        envelope("Cancelled", {"reason": "r", "previous_status": "paid"}, aggregate_id=order)
    )
    unpaid = stats.operations(
        envelope("Cancelled", {"reason": "r", "previous_status": "placed"}, aggregate_id=order)
    )
    key = f"order:{order}"
    assert created == [
        SetFields(key, {"user_id": str(user), "currency": "EUR", "paid_cents": "0"}),
        IncrementField(f"stats:{user}", "orders", 1),
    ]
    assert IncrementField(Template("stats:{user_id}"), Template("spent:{currency}"), 1250) in paid
    assert (
        IncrementField(
            Template("stats:{user_id}"),
            Template("spent:{currency}"),
            Var("paid_cents", negate=True),
        )
        in refund
    )
    assert unpaid == []
    for ops in (created, paid, refund):
        check(ops)


def test_top_spenders_score_users_per_currency() -> None:
    order = uuid4()
    paid = TopSpenders().operations(envelope("Paid", {"amount": "3.00"}, aggregate_id=order))
    assert IncrementScore(Template("top:{currency}"), Template("{user_id}"), 300) in paid


def test_document_projections_ignore_other_aggregates_and_refuse_newer_schemas() -> None:
    assert UserStats().operations(envelope("Registered", {}, aggregate="UserProfile")) == []
    assert UserProfiles().operations(envelope("Created", {"user_id": "x", "currency": "EUR"})) == []
    with pytest.raises(UnsupportedEvent, match="schema version 2"):
        UserStats().operations(envelope("Paid", {"amount": "1"}, schema_version=2))


# -- the engine ----------------------------------------------------------------------------


class FakeTarget:
    """Applies in memory; raises for positions in `failing` (each time, or `times` times)."""

    def __init__(self, failing: dict[int, int]) -> None:
        self.failing = failing
        self.applied: list[int] = []
        self.parked: list[tuple[int, str, int]] = []
        self.position = 0
        self.commits = 0
        self.projection: OpsProjection = UserStats()
        self.dead_letter_db: SqlDatabase = SQLiteDatabase(Path(":memory:"))  # none skipped
        with self.dead_letter_db.transaction() as tx:
            create_tables(tx, (DEAD_LETTERS,))

    def prepare(self) -> None: ...

    def checkpoint(self, context: str) -> Checkpoint:
        return Checkpoint(self.position)

    def rewind(self, context: str) -> Checkpoint:
        return self.checkpoint(context)

    def parked_heads(self, context: str) -> dict[UUID, int]:
        heads: dict[UUID, int] = {}
        for position, _, _ in self.parked:
            heads.setdefault(UUID(int=position % 10), position)
        return heads

    def commit(self, context: str, steps: Sequence[Step]) -> None:
        self.commits += 1
        for step in steps:  # all or nothing
            left = self.failing.get(step.message.position, 0)
            if isinstance(step, Apply) and left:
                self.failing[step.message.position] = left - 1
                raise ProjectionFailed(step.message.position, ValueError("boom"))
        for step in steps:
            if step.message.position <= self.position:
                continue
            if isinstance(step, Apply):
                self.applied.append(step.message.position)
            elif isinstance(step, Park):
                self.parked.append((step.message.position, step.error, step.attempts))
            self.position = step.message.position

    def reapply(self, letter: DeadLetter) -> None: ...


def _messages(*positions: int) -> list[Message]:
    # aggregate = position % 10: 11, 21 and 31 belong to aggregate 1
    return [
        Message(envelope("Paid", {"amount": "1"}, position=p, aggregate_id=UUID(int=p % 10)))
        for p in positions
    ]


def test_a_failing_event_is_set_aside_at_once_with_its_aggregate_and_the_batch_commits():
    target = FakeTarget(failing={11: 99, 13: 99})
    engine = Engine(target, RetryPolicy(delays=(60.0,)))

    outcome = engine.handle("orders", _messages(10, 11, 12, 21, 13, 31))

    # one commit per failing event, then the one that goes through: no pause, no retry in line
    assert target.commits == 3
    assert target.applied == [10, 12]
    assert target.parked == [
        (11, "ValueError: boom", 1),
        (13, "ValueError: boom", 1),
        (21, "blocked by position 11", 0),
        (31, "blocked by position 11", 0),
    ]
    assert (outcome.applied, outcome.parked, outcome.checkpoint) == (2, 4, Checkpoint(31))


def test_the_retry_policy_spaces_the_attempts_then_gives_up():
    policy = RetryPolicy(delays=(0.5, 2.0, 10.0))

    assert policy.attempts == 4
    assert [policy.delay_after(n) for n in range(5)] == [None, 0.5, 2.0, 10.0, None]


def test_duplicates_and_disorder_inside_a_batch_are_sorted_out():
    target = FakeTarget(failing={})
    engine = Engine(target)
    engine.handle("orders", _messages(1, 2))

    outcome = engine.handle("orders", _messages(4, 2, 3, 4, 1))

    assert target.applied == [1, 2, 3, 4]
    assert outcome.duplicates == 3


# -- the projector process -----------------------------------------------------------------

EVENT_STORES = {
    f"{name}_database_url": f"postgresql://u@db:5432/strata_{name}" for name in CONTEXTS
}
STACK = {
    **EVENT_STORES,
    "read_database_url": "postgresql://u@db:5432/strata_read",
    "redis_url": "redis://cache:6379/0",
}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (dict.fromkeys(EVENT_STORES), "runs in the stack mode"),
        ({"read_database_url": None}, "STRATA_READ_DATABASE_URL"),
        ({"redis_url": None}, "STRATA_REDIS_URL"),
        ({"read_database_url": "postgresql://x@db/strata_orders"}, "orders event store"),
    ],
)
def test_settings_the_projector_cannot_run_with(changes: dict[str, object], problem: str):
    found = stack_problem(Settings(**{**STACK, **changes}))  # type: ignore[arg-type]
    assert found is not None and problem in found
    assert "\n" not in found


def test_stack_settings_with_a_read_database_of_its_own_are_fine():
    assert stack_problem(Settings(**STACK)) is None  # type: ignore[arg-type]


def test_lag_is_zero_when_caught_up_and_the_age_of_the_first_unapplied_event_when_behind():
    class Runner:
        engine = Engine(FakeTarget({}))
        context = "orders"
        attached = True
        checkpoint = Checkpoint(40)
        last_event_time: datetime | None = T

    metrics = ProjectorMetrics()
    runner = Runner()
    labels = {"projection": "user_stats", "version": "1", "context": "orders"}

    metrics.observe_lag(runner, 40, now=T + timedelta(seconds=30))  # type: ignore[arg-type]
    assert metrics.registry.get_sample_value("strata_projection_lag_events", labels) == 0
    assert metrics.registry.get_sample_value("strata_projection_lag_seconds", labels) == 0

    metrics.observe_lag(runner, 45, now=T + timedelta(seconds=30))  # type: ignore[arg-type]
    assert metrics.registry.get_sample_value("strata_projection_lag_events", labels) == 5
    assert metrics.registry.get_sample_value("strata_projection_lag_seconds", labels) == 30

    oldest_unapplied = T + timedelta(seconds=20)
    metrics.observe_lag(runner, 45, oldest_unapplied, now=T + timedelta(seconds=30))  # type: ignore[arg-type]
    assert metrics.registry.get_sample_value("strata_projection_lag_seconds", labels) == 10

    runner.last_event_time = None
    metrics.observe_lag(runner, 45)  # type: ignore[arg-type]
    assert math.isnan(metrics.registry.get_sample_value("strata_projection_lag_seconds", labels))


def test_a_retired_versions_series_go_and_a_standby_exports_no_consumer_gauges():
    """Issue 7, item 10: after a rebuild's swap to v2, nothing is exported for v1 any more."""
    v1 = UserStats()
    v2 = v1.at_version(2)

    class Runner:
        engine = SimpleNamespace(projection=v1)
        context = "orders"
        attached = True
        checkpoint = Checkpoint(375)
        last_event_time: datetime | None = T

    metrics, runner = ProjectorMetrics(), Runner()

    def sample(name: str, version: int, **labels: str) -> float | None:
        labels = {"projection": "user_stats", "version": str(version), **labels}
        return metrics.registry.get_sample_value(name, labels)

    metrics.observe_batch(runner, Outcome(applied=3), 0.01)  # type: ignore[arg-type]
    metrics.observe_lag(runner, 375)  # type: ignore[arg-type]
    metrics.observe_dead_letters([v1], {("user_stats", 1): 2})
    assert sample("strata_projection_checkpoint_position", 1, context="orders") == 375
    assert sample("strata_projection_dead_letters", 1) == 2

    runner.engine.projection = v2  # the swap: the consumer now writes v2
    metrics.observe_lag(runner, 380)  # type: ignore[arg-type]
    metrics.observe_dead_letters([v2], {})

    for name in (
        "strata_projection_checkpoint_position",
        "strata_projection_lag_events",
        "strata_projection_consumer_attached",
        "strata_projection_events_applied_total",
    ):
        assert sample(name, 1, context="orders") is None, name
    assert sample("strata_projection_batch_seconds_count", 1) is None
    assert sample("strata_projection_dead_letters", 1) is None
    assert sample("strata_projection_checkpoint_position", 2, context="orders") == 375
    assert sample("strata_projection_dead_letters", 2) == 0

    metrics.forget_consumers()  # back to standby
    assert sample("strata_projection_checkpoint_position", 2, context="orders") is None
    assert sample("strata_projection_consumer_attached", 2, context="orders") is None


def test_dump_differences_name_the_path_of_each_mismatch():
    live = {"orders": {"orders": [["a", 1], ["b", 2]]}, "top": {"top:EUR": [["u", 5]]}}
    rebuilt = {"orders": {"orders": [["a", 1], ["b", 3]]}, "top": {}}

    assert differences(live, live) == []
    assert differences(live, rebuilt) == [
        "$.orders.orders[1][1]: expected 2, got 3",
        "$.top.top:EUR: missing",
    ]
    assert len(differences({"x": list(range(50))}, {"x": [-1] * 50}, limit=5)) == 5


@pytest.mark.parametrize(
    ("reply", "infrastructure"),
    [
        (ReadOnlyError("You can't write against a read only replica."), True),
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), True),
        (ResponseError("MISCONF Redis is configured to save RDB snapshots, but ..."), True),
        (ResponseError("BUSY Redis is busy running a script."), True),
        (ResponseError("Error running script (call to f_1): user_script:9: bad argument"), False),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
    ],
)
def test_redis_replies_about_the_server_are_retried_not_parked(
    reply: ResponseError, infrastructure: bool
) -> None:
    assert is_infrastructure_reply(reply) is infrastructure
