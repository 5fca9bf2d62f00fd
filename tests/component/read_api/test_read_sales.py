"""GET /sales/daily and GET /leaderboards/{currency}/top-spenders, on both storage modes."""

import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from readmodels.catalog import DAILY_SALES, TOP_SPENDERS
from tests.component.read_api.pages import walk
from tests.support.api import assert_problem
from tests.support.read_models import Backend

DAY0 = date(2026, 1, 1)
CURRENCIES = ["CHF", "EUR", "USD"]


def sales(backend: Backend) -> list[tuple[str, str]]:
    """Ten days, three currencies each (one day without USD); returns (day, currency) in order."""
    keys = []
    for offset in range(10):
        day = DAY0 + timedelta(days=offset)
        for currency in CURRENCIES:
            if currency == "USD" and offset == 4:
                continue
            backend.write.daily_sales(
                day,
                currency,
                orders_paid=offset + 1,
                paid_cents=1000 * (offset + 1),
                orders_refunded=offset % 2,
                refunded_cents=150 * (offset % 2),
            )
            keys.append((day.isoformat(), currency))
    backend.write.checkpoint(DAILY_SALES, "orders", 31)
    return keys


def keys(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(item["day"], item["currency"]) for item in items]


@pytest.mark.parametrize("limit", [1, 7, 200])
def test_daily_sales_pages_walk_every_day_and_currency_once(
    client: TestClient, backend: Backend, limit: int
) -> None:
    expected = sales(backend)

    assert keys(walk(client, "/sales/daily", {"limit": limit})) == expected


def test_daily_sales_filter_by_currency_and_inclusive_days(
    client: TestClient, backend: Backend
) -> None:
    expected = sales(backend)

    walked = walk(
        client,
        "/sales/daily",
        {"currency": "usd", "from": "2026-01-03", "to": "2026-01-06", "limit": 2},
    )

    assert keys(walked) == [
        k for k in expected if k[1] == "USD" and "2026-01-03" <= k[0] <= "2026-01-06"
    ]


def test_a_daily_sales_row_has_money_as_decimal_strings(
    client: TestClient, backend: Backend
) -> None:
    backend.write.daily_sales(
        DAY0, "EUR", orders_paid=3, paid_cents=12345, orders_refunded=1, refunded_cents=45
    )
    backend.write.checkpoint(DAILY_SALES, "orders", 8)

    response = client.get("/sales/daily", params={"from": "2026-01-01", "to": "2026-01-01"})

    assert response.headers["X-Read-Position"] == "orders:8"
    assert response.json() == {
        "items": [
            {
                "day": "2026-01-01",
                "currency": "EUR",
                "orders_paid": 3,
                "paid": "123.45",
                "orders_refunded": 1,
                "refunded": "0.45",
                "net": "123.00",
            }
        ],
        "next_cursor": None,
    }


def test_daily_sales_have_each_currencys_minor_units(client: TestClient, backend: Backend) -> None:
    """A day may refund more than it was paid (refunds of earlier days): its net is negative."""
    for currency, paid, refunded in (("BHD", 1001, 0), ("JPY", 150000, 420000), ("USD", 1230, 0)):
        backend.write.daily_sales(DAY0, currency, paid_cents=paid, refunded_cents=refunded)
    backend.write.checkpoint(DAILY_SALES, "orders", 8)

    items = client.get("/sales/daily").json()["items"]

    assert [(s["currency"], s["paid"], s["refunded"], s["net"]) for s in items] == [
        ("BHD", "10.010", "0.000", "10.010"),
        ("JPY", "1500", "4200", "-2700"),
        ("USD", "12.30", "0.00", "12.30"),
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"currency": "XXY"}, "query.currency"),
        ({"currency": "EURO"}, "query.currency"),
        ({"from": "2026-13-01"}, "query.from"),
        ({"to": "tomorrow"}, "query.to"),
        ({"from": "2026-01-05", "to": "2026-01-04"}, "query.to"),
        ({"limit": 1000}, "query.limit"),
        ({"cursor": "x" * 2000}, "query.cursor"),
    ],
)
def test_daily_sales_reject_bad_parameters_naming_them(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    body = assert_problem(client.get("/sales/daily", params=params), 422, field)
    assert body["errors"][0]["field"] == field


def test_a_daily_sales_cursor_is_bound_to_its_window(client: TestClient, backend: Backend) -> None:
    sales(backend)
    cursor = client.get("/sales/daily", params={"limit": 3}).json()["next_cursor"]

    assert_problem(
        client.get("/sales/daily", params={"cursor": cursor, "from": "2026-01-02"}),
        422,
        "query.cursor",
    )


def test_top_spenders_most_first_with_ranks_and_limit(client: TestClient, backend: Backend) -> None:
    spenders = {uuid.uuid4(): cents for cents in (500, 12030, 7, 99999, 12030)}
    for user, cents in spenders.items():
        backend.write.top("EUR", user, cents)
    backend.write.top("USD", uuid.uuid4(), 10**9)
    backend.write.checkpoint(TOP_SPENDERS, "orders", 21)
    expected = sorted(spenders.items(), key=lambda s: (s[1], str(s[0])), reverse=True)

    response = client.get("/leaderboards/eur/top-spenders", params={"limit": 4})

    assert response.status_code == 200, response.text
    assert response.headers["X-Read-Position"] == "orders:21"
    assert response.json() == {
        "currency": "EUR",
        "items": [
            {"rank": rank, "user_id": str(user), "spent": f"{cents / 100:.2f}"}
            for rank, (user, cents) in enumerate(expected[:4], start=1)
        ],
    }


def test_a_leaderboard_in_yen_has_whole_amounts(client: TestClient, backend: Backend) -> None:
    user = uuid.uuid4()
    backend.write.top("JPY", user, 150000)
    backend.write.checkpoint(TOP_SPENDERS, "orders", 2)

    assert client.get("/leaderboards/JPY/top-spenders").json()["items"] == [
        {"rank": 1, "user_id": str(user), "spent": "1500"}
    ]


def test_a_currency_nobody_spent_in_has_an_empty_leaderboard(client: TestClient) -> None:
    assert client.get("/leaderboards/JPY/top-spenders").json() == {
        "currency": "JPY",
        "items": [],
    }


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/leaderboards/XYZ/top-spenders", "path.currency"),
        ("/leaderboards/EURO/top-spenders", "path.currency"),
        ("/leaderboards/EUR/top-spenders?limit=0", "query.limit"),
        ("/leaderboards/EUR/top-spenders?limit=201", "query.limit"),
    ],
)
def test_leaderboard_rejects_bad_parameters_naming_them(
    client: TestClient, path: str, field: str
) -> None:
    assert_problem(client.get(path), 422, field)
