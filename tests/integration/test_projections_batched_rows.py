"""Relational projections write a batch with one statement per table and change on PostgreSQL
(projections.row_batch_sql): the result equals applying the events one statement at a time
(SQLite, which keeps that path), a batch costs a few statements, and a failing event still parks
only its own aggregate, with the error the per-statement path gives."""

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from eventlog.envelope import EventEnvelope
from projections import dead_letters
from projections.dead_letters import DeadLetter
from projections.engine import Engine
from projections.model import Message
from projections.models import DailySales, Orders
from readmodels.pipeline import PipelinedTx
from tests.support.dumps import dump_read_models
from tests.support.projections import ReadSide, read_side

pytestmark = pytest.mark.postgres

USER = UUID(int=1)
DAY = datetime(2026, 11, 2, 23, 59, tzinfo=UTC)


class Log:
    """Order events with consecutive positions and per-order versions."""

    def __init__(self) -> None:
        self.envelopes: list[EventEnvelope] = []
        self._versions: dict[UUID, int] = {}

    def add(self, order: UUID, event: str, at: datetime = DAY, **data: Any) -> None:
        version = self._versions[order] = self._versions.get(order, 0) + 1
        self.envelopes.append(
            EventEnvelope(
                position=len(self.envelopes) + 1,
                context="orders",
                aggregate_type="Order",
                aggregate_id=order,
                aggregate_version=version,
                event_type=event,
                schema_version=1,
                timestamp=at,
                data=data,
            )
        )

    def created(self, order: UUID, currency: str = "EUR") -> None:
        self.add(order, "Created", user_id=str(USER), currency=currency)

    def messages(self) -> list[Message]:
        return [Message(envelope, envelope.position) for envelope in self.envelopes]


def _both_orders(log: Log, a: UUID, b: UUID) -> None:
    """Two orders with the same SKUs, interleaved, changed several times in one batch."""
    log.created(a)
    log.created(b, "USD")
    log.add(a, "LineAdded", sku="S", quantity=2, unit_price="1.50")
    log.add(b, "LineAdded", sku="S", quantity=1, unit_price="7.00")
    log.add(a, "LineAdded", sku="T", quantity=1, unit_price="0.25")
    log.add(a, "LineRemoved", sku="S")  # reads the line's amount, then deletes it
    log.add(a, "LineAdded", sku="S", quantity=3, unit_price="2.00")  # the same key again
    log.add(b, "LineAdded", sku="T", quantity=4, unit_price="1.00")
    log.add(a, "Placed", total="6.25")
    log.add(b, "Placed", total="11.00")


def _paid_and_refunded(log: Log, a: UUID, b: UUID) -> None:
    """Payments on two days and currencies, one refunded in the same batch (the refund reads
    the amount the payment set, before it is set back to 0)."""
    log.add(a, "Paid", amount="6.25")
    log.add(b, "Paid", amount="11.00", at=DAY + timedelta(minutes=2))  # the next UTC day
    log.add(a, "Cancelled", reason="changed mind", previous_status="paid")


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement sent in a pipelined transaction."""
    sent: list[str] = []
    execute, expect = PipelinedTx.execute, PipelinedTx.expect

    def counting_execute(tx: PipelinedTx, statement: str, params: Any = ()) -> int:
        sent.append(statement)
        return execute(tx, statement, params)

    def counting_expect(tx: PipelinedTx, statement: str, *args: Any) -> None:
        sent.append(statement)
        expect(tx, statement, *args)

    monkeypatch.setattr(PipelinedTx, "execute", counting_execute)
    monkeypatch.setattr(PipelinedTx, "expect", counting_expect)
    return sent


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[tuple[ReadSide, ReadSide]]:
    with read_side("postgres", tmp_path) as pg, read_side("sqlite", tmp_path) as lite:
        projections = [Orders(), DailySales()]
        yield pg.with_projections(projections), lite.with_projections(projections)


def _apply(side: ReadSide, messages: list[Message], batch: int = 1000) -> None:
    for engine in side.engines():
        for start in range(0, len(messages), batch):
            engine.handle("orders", messages[start : start + batch])


def _letters(side: ReadSide) -> list[tuple[str, UUID, int, str]]:
    found: list[tuple[str, UUID, int, str]] = []
    for engine in side.engines():
        for letter in _parked(engine):
            found.append((letter.projection, letter.aggregate_id, letter.position, letter.error))
    return sorted(found)


def _parked(engine: Engine) -> list[DeadLetter]:
    with engine.target.dead_letter_db.transaction(write=False) as tx:
        return dead_letters.listing(tx, projection=engine.projection.name)


def test_a_batch_folds_to_what_the_statements_make(
    sides: tuple[ReadSide, ReadSide], statements: list[str]
) -> None:
    pg, lite = sides
    log = Log()
    a, b = uuid.uuid4(), uuid.uuid4()
    _both_orders(log, a, b)
    _paid_and_refunded(log, a, b)
    _apply(pg, log.messages())
    _apply(lite, log.messages())

    assert dump_read_models(pg.targets) == dump_read_models(lite.targets)
    dump = dump_read_models(pg.targets)
    totals = {row[0]: (row[4], row[5]) for row in dump["orders"]["orders"]}  # cents, lines
    assert totals == {str(a): (625, 2), str(b): (1100, 2)}
    sales = {(row[0], row[1]): row[2:] for row in dump["daily_sales"]["daily_sales"]}
    assert sales == {
        ("2026-11-02", "EUR"): [1, 625, 1, 625],
        ("2026-11-03", "USD"): [1, 1100, 0, 0],
    }
    rows = [s for s in statements if "unnest" in s]
    assert rows, "the batch was not folded"
    assert len(statements) < len(log.envelopes)


def test_adds_to_rows_the_batch_never_read_and_to_rows_it_did_all_count(
    sides: tuple[ReadSide, ReadSide], statements: list[str]
) -> None:
    pg, lite = sides
    log = Log()
    orders = [uuid.uuid4() for _ in range(6)]
    for order in orders:
        log.created(order)
        log.add(order, "LineAdded", sku="S", quantity=1, unit_price="1.00")
        log.add(order, "Placed", total="1.00")
    first = log.messages()
    for i, order in enumerate(orders):  # paid in a later batch: daily_sales rows exist then
        log.add(order, "Paid", amount=f"{i + 1}.00")
    second = log.messages()[len(first) :]
    _apply(pg, first)
    _apply(pg, second[:3])
    _apply(pg, second[3:])
    _apply(lite, log.messages(), batch=1)

    assert dump_read_models(pg.targets) == dump_read_models(lite.targets)
    [sales] = dump_read_models(pg.targets)["daily_sales"]["daily_sales"]
    assert sales[2:4] == [6, 2100]  # orders paid, cents
    assert any("ON CONFLICT" in s and "unnest" in s for s in statements)


def test_a_failing_event_parks_only_its_aggregate_with_the_statements_error(
    sides: tuple[ReadSide, ReadSide],
) -> None:
    pg, lite = sides
    log = Log()
    good, bad, dup, late, ghost = (uuid.uuid4() for _ in range(5))
    log.created(good)
    log.created(bad)
    log.add(good, "LineAdded", sku="S", quantity=1, unit_price="1.00")
    log.add(bad, "LineRemoved", sku="never added")  # a Lookup of a missing row
    log.add(bad, "LineAdded", sku="S", quantity=1, unit_price="1.00")  # parked behind it
    log.add(good, "Placed", total="1.00")
    log.created(dup)
    log.created(dup)  # a duplicate key: the insert fails in PostgreSQL and in SQLite
    log.created(late)
    log.add(ghost, "Shipped")  # an order never created: MissingRow
    log.add(late, "LineAdded", sku="L", quantity=2, unit_price="3.00")
    _apply(pg, log.messages())
    _apply(lite, log.messages(), batch=1)

    parked = {(p, position): (aggregate, error) for p, aggregate, position, error in _letters(pg)}
    assert set(parked) == {
        ("daily_sales", 8),
        ("orders", 4),
        ("orders", 5),
        ("orders", 8),
        ("orders", 10),
    }
    assert parked["orders", 10] == (ghost, f"MissingRow: no order {ghost}")
    assert parked["orders", 4][0] == bad
    # the order's total adds the missing line's amount, NULL: refused before the delete runs
    assert parked["orders", 4][1].startswith('NotNullViolation: null value in column "total_cents"')
    assert parked["orders", 5][0] == bad
    assert parked["orders", 8][0] == parked["daily_sales", 8][0] == dup
    assert "UniqueViolation" in parked["orders", 8][1]
    assert [letter[:3] for letter in _letters(lite)] == [letter[:3] for letter in _letters(pg)]
    assert dump_read_models(pg.targets) == dump_read_models(lite.targets)
    orders = {row[0]: row[5] for row in dump_read_models(pg.targets)["orders"]["orders"]}
    assert orders == {str(good): 1, str(bad): 0, str(dup): 0, str(late): 1}  # line counts


def test_a_versioned_model_is_written_under_its_own_names(
    tmp_path: Path, statements: list[str]
) -> None:
    log = Log()
    order = uuid.uuid4()
    log.created(order)
    log.add(order, "LineAdded", sku="S", quantity=2, unit_price="1.00")
    with read_side("postgres", tmp_path) as side:
        v2 = side.with_projections([Orders().at_version(2)])
        _apply(v2, log.messages())
        with side.db.transaction(write=False) as tx:
            rows = tx.query("SELECT total_cents, line_count FROM orders_v2")
            lines = tx.query("SELECT count(*) FROM order_lines_v2")
    assert rows == [(200, 1)]
    assert lines == [(1,)]
    assert any("orders_v2" in s and "unnest" in s for s in statements)


def _random_log(rng: random.Random, events: int) -> Log:
    """Orders sharing SKUs, lines added and removed (some never added), payments and refunds,
    a few duplicate creations and events of orders never created, interleaved at random."""
    log = Log()
    orders = [UUID(int=rng.getrandbits(128)) for _ in range(5)]
    for _ in range(events):
        order = rng.choice(orders)
        sku = rng.choice("ST")
        match rng.randrange(9):
            case 0 | 1:
                log.created(order, rng.choice(["EUR", "USD"]))
            case 2 | 3 | 4:
                price = f"{rng.randint(1, 9)}.{rng.choice(['00', '50'])}"
                log.add(order, "LineAdded", sku=sku, quantity=rng.randint(1, 3), unit_price=price)
            case 5:
                log.add(order, "LineRemoved", sku=sku)
            case 6:
                log.add(order, "Paid", amount=f"{rng.randint(1, 20)}.00")
            case 7:
                log.add(
                    order, "Cancelled", reason="r", previous_status=rng.choice(["paid", "placed"])
                )
            case _:
                log.add(order, "Placed", total="1.00")
    return log


@pytest.mark.parametrize("seed", range(4))
def test_random_batches_fold_to_what_the_statements_make(
    seed: int, tmp_path: Path, statements: list[str]
) -> None:
    rng = random.Random(seed)
    log = _random_log(rng, 80)
    projections = [Orders(), DailySales()]
    with read_side("postgres", tmp_path) as pg_side, read_side("sqlite", tmp_path) as lite_side:
        pg, lite = pg_side.with_projections(projections), lite_side.with_projections(projections)
        messages = log.messages()
        start = 0
        while start < len(messages):
            size = rng.randint(1, 40)
            _apply(pg, messages[start : start + size])
            start += size
        _apply(lite, messages, batch=1)
        assert dump_read_models(pg.targets) == dump_read_models(lite.targets)
        parked = _letters(pg)
        assert [p[:3] for p in parked] == [p[:3] for p in _letters(lite)]
    assert parked, "the log was meant to hold failing events"
    assert any("unnest" in s for s in statements), "no batch was folded"
