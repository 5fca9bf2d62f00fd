"""Document operations (binds, templates, variables, their JSON for the Lua executor) and
the document projections that emit them."""

import json
from uuid import uuid4

import pytest

from projections.document_ops import (
    AppendToList,
    Bind,
    IncrementField,
    IncrementScore,
    Op,
    SetFields,
    Template,
    UnboundName,
    Var,
    check,
    encode,
    fill,
    resolve,
)
from projections.model import UnsupportedEvent
from projections.models import TopSpenders, UserProfiles, UserStats
from tests.support.projection_doubles import envelope


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
    ops: list[Op] = [
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
