"""The fold of a batch's `Rows` calls (projections.row_batch): per table and key, in call order,
with the statements' semantics; and the cheap read of a JetStream message's stream sequence."""

from collections.abc import Callable
from datetime import date

import pytest
from nats.aio.msg import Msg

from projections.consumers import stream_sequence
from projections.row_batch import (
    BatchFailed,
    Changes,
    NotFoldable,
    RecordingRows,
    RowFold,
)
from projections.rows import Lookup

KEYS = {
    "orders": ("id",),
    "lines": ("order_id", "sku"),
    "sales": ("day", "currency"),
    "memory": ("order_id",),
}
COLUMNS = {
    "orders": ("id", "status", "total", "count"),
    "lines": ("order_id", "sku", "amount"),
    "sales": ("day", "currency", "paid", "refunded"),
    "memory": ("order_id", "currency", "paid"),
}
DAY = date(2026, 11, 2)


def _fold(recorded: RecordingRows, held: dict[str, list[dict[str, object]]]) -> dict[str, Changes]:
    """Fold the recorded calls over what the 'database' holds (`held`, per table)."""
    fold = RowFold(KEYS, COLUMNS)
    for table, keys in fold.reads(recorded.calls).items():
        rows = [r for r in held.get(table, []) if tuple(r[c] for c in KEYS[table]) in keys]
        fold.loaded(table, keys, rows)
    fold.replay(recorded.calls)
    return fold.changes()


def _order(order: str, total: int = 0, status: str = "draft") -> dict[str, object]:
    return {"id": order, "status": status, "total": total, "count": 0}


def test_rows_of_different_keys_stay_apart_and_each_table_is_written_once() -> None:
    rows = RecordingRows()
    for order in ("a", "b"):
        rows.insert("orders", _order(order))
        rows.insert("lines", {"order_id": order, "sku": "S", "amount": 5 if order == "a" else 7})
        rows.update("orders", {"id": order}, add={"total": 5 if order == "a" else 7, "count": 1})
    changes = _fold(rows, {})
    assert sorted(changes["orders"].inserts, key=lambda r: str(r["id"])) == [
        {"id": "a", "status": "draft", "total": 5, "count": 1},
        {"id": "b", "status": "draft", "total": 7, "count": 1},
    ]
    assert len(changes["lines"].inserts) == 2
    assert not changes["orders"].updates and not changes["orders"].deletes


def test_every_add_counts_on_rows_read_and_on_rows_only_added_to() -> None:
    rows = RecordingRows()
    for amount in (1, 2, 3):
        rows.update("orders", {"id": "a"}, add={"total": amount, "count": 1})
        rows.accumulate("sales", {"day": DAY, "currency": "EUR"}, {"paid": amount, "refunded": 0})
    changes = _fold(rows, {"orders": [_order("a", total=10)]})
    assert changes["orders"].updates == [{"id": "a", "status": "draft", "total": 16, "count": 3}]
    assert changes["sales"].adds == {
        ("day", "currency", "paid", "refunded"): [
            {"day": DAY, "currency": "EUR", "paid": 6, "refunded": 0}
        ]
    }


def test_a_lookup_reads_the_row_as_the_calls_before_it_left_it() -> None:
    rows = RecordingRows()
    memory = {"order_id": "a"}
    paid = Lookup("memory", memory, ("paid",))
    currency = Lookup("memory", memory, ("currency",))
    rows.update("memory", memory, set={"paid": 625})
    rows.accumulate("sales", {"day": DAY, "currency": currency}, {"paid": 0, "refunded": paid})
    rows.update("memory", memory, set={"paid": 0})
    changes = _fold(rows, {"memory": [{"order_id": "a", "currency": "EUR", "paid": 0}]})
    [refund] = changes["sales"].adds[("day", "currency", "paid", "refunded")]
    assert refund == {"day": DAY, "currency": "EUR", "paid": 0, "refunded": 625}
    assert "memory" not in changes  # set to 625, then back to what it held


def test_a_row_deleted_and_inserted_again_is_updated_one_inserted_and_deleted_unwritten() -> None:
    rows = RecordingRows()
    line = {"order_id": "a", "sku": "S"}
    amount = Lookup("lines", line, ("amount",), sign=-1)
    rows.update("orders", {"id": "a"}, add={"total": amount, "count": -1})
    rows.delete("lines", line)
    rows.insert("lines", {**line, "amount": 9})
    rows.insert("lines", {"order_id": "a", "sku": "T", "amount": 1})
    rows.delete("lines", {"order_id": "a", "sku": "T"})
    held = {"orders": [_order("a", total=4)], "lines": [{**line, "amount": 4}]}
    changes = _fold(rows, held)
    assert changes["lines"].updates == [{**line, "amount": 9}]
    assert not changes["lines"].inserts and not changes["lines"].deletes
    assert changes["orders"].updates[0]["total"] == 0


def test_a_lookup_of_a_missing_row_reads_null_as_its_subquery_does() -> None:
    rows = RecordingRows()
    missing = Lookup("lines", {"order_id": "a", "sku": "X"}, ("amount",), sign=-1)
    rows.update("orders", {"id": "a"}, add={"total": missing})
    changes = _fold(rows, {"orders": [_order("a", total=4)]})
    assert changes["orders"].updates[0]["total"] is None  # PostgreSQL refuses it: NOT NULL


@pytest.mark.parametrize(
    ("call", "held"),
    [
        (lambda r: r.update("orders", {"id": "x"}, set={"status": "paid"}), {}),
        (lambda r: r.delete("lines", {"order_id": "x", "sku": "S"}), {}),
        (  # read for the update, so known to exist (else PostgreSQL refuses the insert)
            lambda r: (r.update("orders", {"id": "a"}, set={}), r.insert("orders", _order("a"))),
            {"orders": [_order("a")]},
        ),
        (lambda r: r.update("orders", {"id": "a"}, set={"nope": 1}), {"orders": [_order("a")]}),
    ],
    ids=["update-missing", "delete-missing", "insert-existing", "unknown-column"],
)
def test_a_failing_call_fails_the_whole_fold(
    call: Callable[[RecordingRows], object], held: dict[str, list[dict[str, object]]]
) -> None:
    rows = RecordingRows()
    call(rows)
    with pytest.raises(BatchFailed):
        _fold(rows, held)


def test_what_the_fold_cannot_know_without_reading_is_not_folded() -> None:
    reads = RecordingRows()
    with pytest.raises(NotFoldable):
        reads.get("orders", {"id": "a"}, ["status"])

    after_adds = RecordingRows()  # a row only added to (not read), then changed otherwise
    key = {"day": DAY, "currency": "EUR"}
    after_adds.accumulate("sales", key, {"paid": 1, "refunded": 0})
    after_adds.update("sales", key, set={"paid": 0})
    with pytest.raises(NotFoldable):
        RowFold(KEYS, COLUMNS).replay(after_adds.calls)

    rekey = RecordingRows()
    rekey.update("orders", {"id": "a"}, set={"id": "b"})
    with pytest.raises(NotFoldable):
        _fold(rekey, {"orders": [_order("a")]})


def test_only_rows_not_inserted_first_are_read() -> None:
    rows = RecordingRows()
    rows.insert("orders", _order("new"))
    rows.update("orders", {"id": "new"}, set={"status": "placed"})
    rows.update("orders", {"id": "old"}, set={"status": "placed"})
    rows.accumulate("sales", {"day": DAY, "currency": "EUR"}, {"paid": 1, "refunded": 0})
    assert RowFold(KEYS, COLUMNS).reads(rows.calls) == {"orders": [("old",)]}


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.ES_ORDERS.proj_orders_all.1.4711.12.1700000000000000000.3",
        "$JS.ACK._.acchash.ES_ORDERS.proj_orders_all.1.4711.12.1700000000000000000.3.token",
    ],
    ids=["v1", "v2"],
)
def test_the_stream_sequence_is_read_as_nats_reads_it(reply: str) -> None:
    msg = Msg(None, subject="es.orders", reply=reply)  # type: ignore[arg-type]
    assert stream_sequence(msg) == msg.metadata.sequence.stream == 4711
