"""Commands through the write API, the embedded fan-out, and reads with read-your-writes.

One process, as the embedded default runs (`embedded.app`): the write API, the embedded fan-out
woken by every commit, and the read routes under /read.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contexts.settings import Settings
from embedded.app import create_app
from eventlog.position_tokens import parse_token
from tests.support.api import add_line, assert_problem, create_order, register
from tests.support.auth import OPERATOR


@pytest.fixture
def system(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "var")), headers=OPERATOR) as client:
        yield client


def command(client: TestClient, method: str, path: str, body: Any = None) -> str:
    response = client.request(method, path, json=body)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["position"])


def read(client: TestClient, path: str, position: str, **params: Any) -> Any:
    response = client.get(f"/read{path}", params={"position": position, "wait": 5, **params})
    assert response.status_code == 200, response.text
    token = parse_token(position)
    reached = dict(part.split(":") for part in response.headers["X-Read-Position"].split(","))
    assert int(reached[token.context]) >= token.value
    return response.json()


def test_a_user_reads_their_own_writes_in_every_read_model(system: TestClient) -> None:
    user = register(system, name="Ada Lovelace")
    command(system, "put", f"/users/{user}/location", {"city": "London", "country": "gb"})
    position = command(system, "post", f"/users/{user}/hobbies", {"hobby": "Chess"})

    profile = read(system, f"/users/{user}", position)
    listed = read(system, "/users", position, name_prefix="ada", country="GB", hobby="chess")

    assert profile["name"] == "Ada Lovelace"
    assert (profile["city"], profile["country"]) == ("London", "GB")
    assert profile["hobbies"] == ["Chess"] and profile["version"] == 3
    assert [entry["id"] for entry in listed["items"]] == [user]
    assert listed["items"][0]["hobbies"] == ["Chess"]

    renamed = command(system, "put", f"/users/{user}/name", {"name": "Augusta Ada King"})
    assert read(system, f"/users/{user}", renamed)["name"] == "Augusta Ada King"
    assert system.get(f"/users/{user}").json()["name"] == "Augusta Ada King"  # the command side


@pytest.mark.parametrize(
    ("currency", "prices", "amounts"),
    [
        ("EUR", ("10.15", "0.05"), ("20.35", "20.30", "0.05", "0.00")),
        ("JPY", ("1015", "5"), ("2035", "2030", "5", "0")),
        ("BHD", ("10.15", "0.05"), ("20.350", "20.300", "0.050", "0.000")),
    ],
)
def test_orders_payments_and_refunds_reach_every_order_model(
    system: TestClient, currency: str, prices: tuple[str, str], amounts: tuple[str, ...]
) -> None:
    """The lines' prices as the command takes them; the amounts read back (total, the subtotals
    of the two lines, nothing) with the currency's minor units."""
    total, subtotal, small, nothing = amounts
    user = register(system)
    order = create_order(system, user, currency)
    add_line(system, order, "A-1", 2, prices[0])
    add_line(system, order, "B-2", 1, prices[1])
    command(system, "post", f"/orders/{order}/place")
    paid = command(system, "post", f"/orders/{order}/pay")
    today = datetime.now(UTC).date().isoformat()

    detail = read(system, f"/orders/{order}", paid)
    listing = read(system, "/orders", paid, user_id=user)
    stats = read(system, f"/users/{user}/stats", paid)
    leaders = read(system, f"/leaderboards/{currency}/top-spenders", paid)
    sales = read(system, "/sales/daily", paid, currency=currency, **{"from": today, "to": today})

    assert (detail["status"], detail["total"], detail["line_count"]) == ("paid", total, 2)
    assert [(line["sku"], line["subtotal"]) for line in detail["lines"]] == [
        ("A-1", subtotal),
        ("B-2", small),
    ]
    assert detail["paid_at"] is not None
    assert [(item["id"], item["total"]) for item in listing["items"]] == [(order, total)]
    assert stats == {"user_id": user, "orders": 1, "spent": {currency: total}}
    assert leaders["items"] == [{"rank": 1, "user_id": user, "spent": total}]
    assert [(s["orders_paid"], s["paid"], s["net"]) for s in sales["items"]] == [(1, total, total)]

    cancelled = command(system, "post", f"/orders/{order}/cancel", {"reason": "too late"})

    assert read(system, f"/orders/{order}", cancelled)["status"] == "cancelled"
    assert read(system, f"/users/{user}/stats", cancelled)["spent"] == {currency: nothing}
    refunds = read(system, "/sales/daily", cancelled, currency=currency)["items"]
    assert [(s["orders_refunded"], s["refunded"], s["net"]) for s in refunds] == [
        (1, total, nothing)
    ]


def test_values_commands_stored_trimmed_are_found_by_padded_queries(system: TestClient) -> None:
    user = register(system, name="  Ada Lovelace ")
    command(system, "put", f"/users/{user}/location", {"city": " Paris ", "country": " fr"})
    position = command(system, "post", f"/users/{user}/hobbies", {"hobby": " lead"})

    for query in (
        {"hobby": " lead"},
        {"hobby": "LEAD "},
        {"city": " Paris"},
        {"name_prefix": " ada"},
    ):
        listed = read(system, "/users", position, **query)
        assert [entry["id"] for entry in listed["items"]] == [user], query
    assert read(system, f"/users/{user}", position)["hobbies"] == ["lead"]


def test_a_hobby_or_name_is_found_by_any_spelling_the_commands_take_for_it(
    system: TestClient,
) -> None:
    """The commands hold "Straße" and "STRASSE", "é" and "e" + U+0301, as one hobby; so do the
    filters."""
    user = register(system, name="Straße Zoë")
    command(system, "post", f"/users/{user}/hobbies", {"hobby": "Straße"})
    position = command(system, "post", f"/users/{user}/hobbies", {"hobby": "cafe\u0301"})

    for query in (
        {"hobby": "STRASSE"},
        {"hobby": "strasse"},
        {"hobby": "Caf\u00e9"},
        {"hobby": "CAFE\u0301"},
        {"name_prefix": "STRASSE"},
        {"name_prefix": "strasse zoe\u0308"},
    ):
        listed = read(system, "/users", position, **query)
        assert [entry["id"] for entry in listed["items"]] == [user], query
    assert read(system, "/users", position, hobby="cafe")["items"] == []


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/read/users?name_prefix=%00", "query.name_prefix"),
        ("/read/users?hobby=%ED%A0%80", "query.hobby"),
        ("/read/users?limit=1&limit=2", "query.limit"),
        ("/read/orders?placed_from=1700000000", "query.placed_from"),
        ("/read/leaderboards/%FF/top-spenders", "path.currency"),
    ],
)
def test_bad_parameters_under_read_are_422_naming_them(
    system: TestClient, url: str, field: str
) -> None:
    body = assert_problem(system.get(url), 422, field)
    assert [error["field"] for error in body["errors"]] == [field]


def test_a_position_the_log_never_reached_is_503_after_the_wait(system: TestClient) -> None:
    user = register(system)

    response = system.get(f"/read/users/{user}", params={"position": "users:999999", "wait": 0.2})

    assert_problem(response, 503, "users:999999")
    assert response.headers["Retry-After"] == "1"
