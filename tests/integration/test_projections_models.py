"""Every event type lands in the read models as docs/read-models.md lays them out, on every
store: SQLite (embedded), PostgreSQL, and Redis + PostgreSQL (stack).

The expectations come from the scenario's commands (names, prices, who paid what), not from
the projection code; times and positions are taken from the events themselves.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventlog.envelope import EventEnvelope
from readmodels.formats import utc_day, utc_text
from tests.support.dumps import dump_read_models
from tests.support.projections import (
    READ_SIDES,
    ReadSide,
    Scenario,
    event_stores,
    project,
    read_side,
    run_scenario,
)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with event_stores(tmp_path_factory.mktemp("stores")) as services:
        yield run_scenario(services)


@pytest.fixture(params=READ_SIDES)
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadSide]:
    with read_side(request.param, tmp_path) as built:
        yield built


@pytest.fixture
def dump(side: ReadSide, scenario: Scenario) -> dict[str, Any]:
    project(side, scenario, batch=7)
    return dump_read_models(side.targets)


def _last(events: list[EventEnvelope]) -> EventEnvelope:
    return max(events, key=lambda e: e.position)


def _time(event: EventEnvelope) -> str:
    return utc_text(event.timestamp)


def test_user_profiles_hold_each_users_latest_state(
    scenario: Scenario, dump: dict[str, Any]
) -> None:
    ada, bob = scenario.users["ada"], scenario.users["bob"]
    ada_events, bob_events = scenario.of(ada), scenario.of(bob)
    [ada_registered] = scenario.of(ada, "Registered")
    profiles = dump["user_profiles"]

    assert set(profiles) == {f"user:{ada}", f"user:{bob}"}
    assert profiles[f"user:{ada}"] == {
        "id": str(ada),
        "name": "Ada King",
        "email": "ada.king@example.com",
        "hobbies": '["Go/Baduk"]',
        "city": "London",
        "country": "GB",
        "active": "1",
        "version": str(len(ada_events)),
        "position": str(_last(ada_events).position),
        "registered_at": _time(ada_registered),
        "updated_at": _time(_last(ada_events)),
    }
    bob_profile = profiles[f"user:{bob}"]
    assert json.loads(bob_profile["hobbies"]) == ["Chess"]
    assert "city" not in bob_profile and "country" not in bob_profile
    assert bob_profile["version"] == str(len(bob_events))


def test_user_stats_count_orders_and_net_spending(scenario: Scenario, dump: dict[str, Any]) -> None:
    ada, bob = scenario.users["ada"], scenario.users["bob"]
    stats = dump["user_stats"]

    # o1 paid 19.98 EUR; o2 paid 100.00 EUR then was cancelled (refunded).
    assert stats[f"stats:{ada}"] == {"orders": "2", "spent:EUR": "1998"}
    # o3 was cancelled before payment; o4 paid 20.00 GBP.
    assert stats[f"stats:{bob}"] == {"orders": "2", "spent:GBP": "2000"}
    o = scenario.orders
    assert stats[f"order:{o['o1']}"] == {
        "user_id": str(ada),
        "currency": "EUR",
        "paid_cents": "1998",
    }
    assert stats[f"order:{o['o2']}"]["paid_cents"] == "0"
    assert stats[f"order:{o['o3']}"] == {"user_id": str(bob), "currency": "GBP", "paid_cents": "0"}
    assert stats[f"order:{o['o4']}"]["paid_cents"] == "2000"


def test_top_spenders_rank_users_per_currency(scenario: Scenario, dump: dict[str, Any]) -> None:
    ada, bob = scenario.users["ada"], scenario.users["bob"]
    top = dump["top_spenders"]

    assert top["top:EUR"] == [[str(ada), 1998]]
    assert top["top:GBP"] == [[str(bob), 2000]]
    assert {key for key in top if key.startswith("order:")} == {
        f"order:{order}" for order in scenario.orders.values()
    }


def test_users_directory_rows_and_hobbies(scenario: Scenario, dump: dict[str, Any]) -> None:
    ada, bob = scenario.users["ada"], scenario.users["bob"]
    [ada_registered] = scenario.of(ada, "Registered")
    [bob_registered] = scenario.of(bob, "Registered")
    tables = dump["users_directory"]
    bob_email = bob_registered.data["email"]

    assert tables["users_directory"] == sorted(
        [
            [
                str(ada),
                "Ada King",
                "ada king",
                "ada.king@example.com",
                "London",
                "GB",
                True,
                len(scenario.of(ada)),
                _time(ada_registered),
                _time(_last(scenario.of(ada))),
            ],
            [
                str(bob),
                "Bob",
                "bob",
                bob_email,
                None,
                None,
                True,
                len(scenario.of(bob)),
                _time(bob_registered),
                _time(_last(scenario.of(bob))),
            ],
        ],
        key=json.dumps,
    )
    assert tables["user_hobbies"] == sorted(
        [[str(ada), "go/baduk", "Go/Baduk"], [str(bob), "chess", "Chess"]], key=json.dumps
    )


def test_orders_and_their_lines(scenario: Scenario, dump: dict[str, Any]) -> None:
    ada, bob = str(scenario.users["ada"]), str(scenario.users["bob"])
    o = scenario.orders
    rows = {row[0]: row for row in dump["orders"]["orders"]}

    def at(order: str, event_type: str) -> str:
        [event] = scenario.of(o[order], event_type)
        return _time(event)

    def version(order: str) -> int:
        return len(scenario.of(o[order]))

    assert rows == {
        str(o["o1"]): [
            str(o["o1"]),
            ada,
            "EUR",
            "shipped",
            1998,
            1,
            at("o1", "Created"),
            at("o1", "Placed"),
            at("o1", "Paid"),
            at("o1", "Shipped"),
            None,
            None,
            version("o1"),
        ],
        str(o["o2"]): [
            str(o["o2"]),
            ada,
            "EUR",
            "cancelled",
            10000,
            1,
            at("o2", "Created"),
            at("o2", "Placed"),
            at("o2", "Paid"),
            None,
            at("o2", "Cancelled"),
            "damaged",
            version("o2"),
        ],
        str(o["o3"]): [
            str(o["o3"]),
            bob,
            "GBP",
            "cancelled",
            450,
            1,
            at("o3", "Created"),
            at("o3", "Placed"),
            None,
            None,
            at("o3", "Cancelled"),
            "changed mind",
            version("o3"),
        ],
        str(o["o4"]): [
            str(o["o4"]),
            bob,
            "GBP",
            "paid",
            2000,
            1,
            at("o4", "Created"),
            at("o4", "Placed"),
            at("o4", "Paid"),
            None,
            None,
            None,
            version("o4"),
        ],
    }
    assert dump["orders"]["order_lines"] == sorted(
        [
            [str(o["o1"]), "A", 2, 999],
            [str(o["o2"]), "C", 1, 10000],
            [str(o["o3"]), "D", 3, 150],
            [str(o["o4"]), "E", 1, 2000],
        ],
        key=json.dumps,
    )


def test_daily_sales_count_payments_and_refunds_per_day(
    scenario: Scenario, dump: dict[str, Any]
) -> None:
    o = scenario.orders
    expected: dict[tuple[str, str], list[int]] = {}

    def add(order: str, event_type: str, currency: str, column: int, cents: int) -> None:
        [event] = scenario.of(o[order], event_type)
        row = expected.setdefault((utc_day(event.timestamp).isoformat(), currency), [0, 0, 0, 0])
        row[column] += 1
        row[column + 1] += cents

    add("o1", "Paid", "EUR", 0, 1998)
    add("o2", "Paid", "EUR", 0, 10000)
    add("o2", "Cancelled", "EUR", 2, 10000)
    add("o4", "Paid", "GBP", 0, 2000)

    assert dump["daily_sales"]["daily_sales"] == sorted(
        ([day, currency, *row] for (day, currency), row in expected.items()), key=json.dumps
    )


def test_checkpoints_reach_the_last_position_of_each_context(
    side: ReadSide, scenario: Scenario, dump: dict[str, Any]
) -> None:
    for target in side.targets:
        for context in target.projection.contexts:
            envelopes = scenario.envelopes(context)  # none of the contexts the scenario leaves
            last = envelopes[-1].position if envelopes else 0
            assert target.checkpoint(context).position == last
