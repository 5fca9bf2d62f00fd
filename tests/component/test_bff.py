"""The web and mobile BFFs over a real read API process: the dashboard in one call, compact
mobile answers with ETag and 304, `position` passed through, and a read API stopped for real:
200 with the sections unavailable, the breakers open, and back once it returns."""

import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bff.mobile.app import create_app as create_mobile_app
from bff.web.app import create_app as create_web_app
from contexts.registered import REGISTRY
from tests.support.api import assert_head_is_get_without_body, assert_problem
from tests.support.auth import Identity, new_key
from tests.support.bff import (
    ReadApiProcess,
    bearer,
    bff_settings,
    breaker_state,
    read_database,
    write_fulfilment,
)
from tests.support.processes import free_port
from tests.support.read_models import OrderLineRow, ReadModelWriter
from tests.support.servers import wait_until

ADA = uuid.UUID("00000000-0000-4000-8000-00000000000a")
BOB = uuid.UUID("00000000-0000-4000-8000-00000000000b")
KEN = uuid.UUID("00000000-0000-4000-8000-00000000000c")
KENS_ORDER = uuid.UUID(int=0xC0)
SECTIONS = ("profile", "stats", "recent_orders", "leaderboard")


@dataclass(frozen=True)
class Shop:
    data_dir: Path
    write: ReadModelWriter
    read_api: str
    """The base URL of the read API process serving the module's tests."""
    orders: list[uuid.UUID]
    """Ada's orders, oldest first."""


def fill(write: ReadModelWriter) -> list[uuid.UUID]:
    """Ada with seven placed orders (the latest one fulfilling), second of the EUR spenders;
    Ken with one order in yen, first of the JPY and USD spenders; every checkpoint at 10. The
    ids of Ada's orders, oldest first."""
    write.profile(ADA, "Ada", "ada@example.com", city="London", country="GB")
    write.stats(ADA, 7, {"EUR": 4200})
    write.top("EUR", BOB, 9900)
    write.top("EUR", ADA, 4200)
    now = datetime.now(UTC)
    write.profile(KEN, "Ken", "ken@example.com")
    write.stats(KEN, 1, {"JPY": 150000, "USD": 1230})
    write.top("JPY", KEN, 150000)
    write.top("USD", KEN, 1230)
    yen = [OrderLineRow("SKU-1", 3, 50000)]
    write.order(KENS_ORDER, KEN, currency="JPY", status="paid", lines=yen, placed_at=now)
    orders = [uuid.UUID(int=0xA0 + n) for n in range(7)]
    for n, order in enumerate(orders):
        placed = now - timedelta(hours=7 - n)
        lines = [OrderLineRow("SKU-1", 2, 300 * (n + 1))]
        write.order(order, ADA, status="placed", lines=lines, created_at=placed, placed_at=placed)
    write_fulfilment(write, orders[-1], ADA, "running", "payment")
    write.checkpoint_all(10)
    return orders


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """One read API process over the shop's read database for the module's reading tests."""
    with read_database(tmp_path_factory.mktemp("bff")) as (data_dir, write):
        orders = fill(write)
        process = ReadApiProcess(data_dir, free_port())
        with process.running():
            yield Shop(data_dir, write, process.url, orders)


def test_the_dashboard_is_one_call(shop: Shop) -> None:
    with TestClient(create_web_app(bff_settings(shop.read_api))) as web:
        response = web.get("/web/dashboard", headers=bearer(ADA))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == str(ADA)
    assert body["profile"]["name"] == "Ada" and body["profile"]["city"] == "London"
    assert body["stats"] == {"orders": 7, "spent": {"EUR": "42.00"}}
    recent = body["recent_orders"]
    assert [o["id"] for o in recent["items"]] == [str(o) for o in shop.orders[::-1][:5]]
    assert recent["more"] is True
    assert recent["items"][0]["fulfilment"] == {
        "status": "running",
        "step": "payment",
        "attention": None,
    }
    assert recent["items"][0]["total"] == "42.00"
    assert recent["items"][1]["fulfilment"] is None
    assert body["leaderboard"]["standings"] == [{"currency": "EUR", "spent": "42.00", "rank": 2}]


def test_both_bffs_pass_amounts_on_with_their_currencys_minor_units(shop: Shop) -> None:
    """The read API answers yen without decimals ("1500"): the BFFs take it as sent."""
    with (
        TestClient(create_web_app(bff_settings(shop.read_api))) as web,
        TestClient(create_mobile_app(bff_settings(shop.read_api))) as mobile,
    ):
        dashboard = web.get("/web/dashboard", headers=bearer(KEN)).json()
        me = mobile.get("/mobile/me", headers=bearer(KEN)).json()
        orders = mobile.get("/mobile/orders", headers=bearer(KEN)).json()
        order = mobile.get(f"/mobile/orders/{KENS_ORDER}", headers=bearer(KEN)).json()

    spent = {"JPY": "1500", "USD": "12.30"}
    assert dashboard["stats"] == {"orders": 1, "spent": spent}
    assert [o["total"] for o in dashboard["recent_orders"]["items"]] == ["1500"]
    assert dashboard["leaderboard"]["standings"] == [
        {"currency": "JPY", "spent": "1500", "rank": 1},
        {"currency": "USD", "spent": "12.30", "rank": 1},
    ]
    assert me["totals"] == {"orders": 1, "spent": spent}
    assert [(o["currency"], o["total"]) for o in orders["orders"]["items"]] == [("JPY", "1500")]
    assert order["order"]["lines"] == [{"sku": "SKU-1", "quantity": 3, "subtotal": "1500"}]


def test_the_caller_needs_a_token_and_only_an_operator_reads_another_user(shop: Shop) -> None:
    with TestClient(create_web_app(bff_settings(shop.read_api))) as web:
        anonymous = web.get("/web/dashboard")
        garbled = web.get("/web/dashboard", headers={"Authorization": "Bearer not-a-jwt"})
        other = web.get("/web/dashboard", params={"user_id": str(ADA)}, headers=bearer(BOB))
        operator = web.get(
            "/web/dashboard", params={"user_id": str(ADA)}, headers=bearer(BOB, ["operator"])
        )
        forger = Identity(key=new_key("test-key-1"))  # the trusted kid, another key
        forged = web.get("/web/dashboard", headers=forger.user(str(ADA)))
        unknown = web.get("/web/dashboard", headers=bearer(uuid.uuid4()))

    assert_problem(anonymous, 401, "needs a bearer token")
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="strata"'
    for refused in (garbled, forged):
        assert_problem(refused, 401)
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert_problem(other, 403, "only an operator")
    assert operator.status_code == 200 and operator.json()["profile"]["name"] == "Ada"
    body = assert_problem(unknown, 404, "in the read model")
    assert body["instance"] == "/web/dashboard"


def test_mobile_answers_are_compact_with_an_etag_and_a_304(shop: Shop) -> None:
    with TestClient(create_mobile_app(bff_settings(shop.read_api))) as mobile:
        me = mobile.get("/mobile/me", headers=bearer(ADA))
        again = mobile.get(
            "/mobile/me", headers={**bearer(ADA), "If-None-Match": me.headers["ETag"]}
        )
        first = mobile.get("/mobile/orders", params={"limit": 3}, headers=bearer(ADA))
        cursor = first.json()["orders"]["next_cursor"]
        second = mobile.get(
            "/mobile/orders", params={"limit": 3, "cursor": cursor}, headers=bearer(ADA)
        )
        order = mobile.get(f"/mobile/orders/{shop.orders[-1]}", headers=bearer(ADA))
        not_hers = mobile.get(f"/mobile/orders/{shop.orders[-1]}", headers=bearer(BOB))

    assert me.json() == {
        "profile": {"id": str(ADA), "name": "Ada"},
        "totals": {"orders": 7, "spent": {"EUR": "42.00"}},
    }
    assert me.headers["ETag"].startswith('"') and me.headers["Cache-Control"] == "private, no-cache"
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == me.headers["ETag"]
    pages = first.json()["orders"]["items"] + second.json()["orders"]["items"]
    assert [o["id"] for o in pages] == [str(o) for o in shop.orders[:6]]
    assert set(pages[0]) == {"id", "status", "currency", "total", "placed_at"}
    assert first.headers["ETag"] != second.headers["ETag"]
    assert order.json()["order"]["fulfilment"] == {"status": "running", "step": "payment"}
    assert order.json()["order"]["lines"] == [{"sku": "SKU-1", "quantity": 2, "subtotal": "42.00"}]
    assert_problem(not_hers, 403, "another user")


def test_a_read_api_process_and_a_bff_answer_head_like_get(shop: Shop) -> None:
    path = f"{shop.read_api}/users/{ADA}"
    get, head = httpx.get(path, headers=bearer(ADA)), httpx.head(path, headers=bearer(ADA))
    assert_head_is_get_without_body(get, head)
    with TestClient(create_mobile_app(bff_settings(shop.read_api))) as mobile:
        get = mobile.get("/mobile/me", headers=bearer(ADA))
        head = mobile.head("/mobile/me", headers=bearer(ADA))
    assert_head_is_get_without_body(get, head)


def test_the_position_passes_through_to_every_section(shop: Shop) -> None:
    ahead = {"position": "users:11", "wait": "0.2"}
    with TestClient(create_web_app(bff_settings(shop.read_api))) as web:
        behind = web.get("/web/dashboard", params=ahead, headers=bearer(ADA))
        for model in (m for m in REGISTRY.read_models if "users" in m.contexts):
            shop.write.checkpoint(model, "users", 11)
        caught_up = web.get("/web/dashboard", params=ahead, headers=bearer(ADA))
        wrong = web.get("/web/dashboard", params={"position": "nowhere:1"}, headers=bearer(ADA))

    assert behind.status_code == 200
    assert behind.json()["profile"]["reason"] == "behind"
    assert behind.json()["stats"]["reason"] == "behind"
    assert behind.json()["recent_orders"]["items"]  # no users' model behind the orders
    assert caught_up.json()["profile"]["name"] == "Ada"
    assert caught_up.json()["leaderboard"]["standings"][0]["rank"] == 2
    body = assert_problem(wrong, 422, "query.position")  # the read API's own refusal, relayed
    assert body["instance"] == "/web/dashboard"


def test_a_stopped_read_api_leaves_a_200_with_sections_unavailable_and_opens_the_breakers(
    shop: Shop,
) -> None:
    process = ReadApiProcess(shop.data_dir, free_port())  # one of its own, to stop
    with TestClient(create_web_app(bff_settings(process.url))) as web:
        with process.running() as read_api:
            assert web.get("/web/dashboard", headers=bearer(ADA)).json()["profile"]["name"]
            read_api.kill()
            read_api.wait(timeout=10)
        down = [web.get("/web/dashboard", headers=bearer(ADA)) for _ in range(3)]
        metrics = web.get("/metrics").text
        assert web.get("/readyz").json() == {"status": "ready", "read_api": "unreachable"}

        with process.running():

            def whole() -> bool:
                body = web.get("/web/dashboard", headers=bearer(ADA)).json()
                return not any("unavailable" in body[name] for name in SECTIONS)

            wait_until(whole, 10, "the dashboard is whole again")
            healed = web.get("/metrics").text

    assert all(answer.status_code == 200 for answer in down)
    assert [down[0].json()[s]["reason"] for s in SECTIONS] == [
        "unreachable", "unreachable", "unreachable", "needs-another",
    ]  # fmt: skip
    assert down[-1].json()["profile"]["reason"] == "breaker-open"
    assert set(down[0].json()["profile"]) == {"unavailable", "reason", "detail"}  # no retry_after
    assert breaker_state(metrics, "read-api:profile") == 2
    assert breaker_state(metrics, "read-api:orders") == 2
    assert breaker_state(healed, "read-api:profile") == 0


def test_a_read_api_down_leaves_mobile_sections_unavailable_without_an_etag() -> None:
    nothing_there = f"http://127.0.0.1:{free_port()}"
    with TestClient(create_mobile_app(bff_settings(nothing_there))) as mobile:
        me = mobile.get("/mobile/me", headers=bearer(ADA))
        orders = mobile.get("/mobile/orders", headers=bearer(ADA))

    assert me.status_code == orders.status_code == 200
    assert me.json()["profile"]["unavailable"] is True
    assert orders.json()["orders"]["reason"] == "unreachable"
    detail = orders.json()["orders"]["detail"]  # what failed, not where the read API is
    assert detail.startswith("read API GET /orders: ") and "127.0.0.1" not in detail
    assert "ETag" not in me.headers and me.headers["Cache-Control"] == "no-store"


def test_a_slow_read_api_is_cut_at_the_deadline() -> None:
    """A read API that accepts connections and never answers: the section gives up after
    `bff_timeout_seconds`."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = bff_settings(url, bff_timeout_seconds=0.3)
        with TestClient(create_mobile_app(settings)) as mobile:
            answer = mobile.get("/mobile/orders", headers=bearer(ADA))

    assert answer.status_code == 200
    assert "within 0.3 s" in answer.json()["orders"]["detail"]


def test_the_read_apis_429_is_the_callers_own_limit_and_opens_no_breaker(shop: Shop) -> None:
    """Ada's reloads spend her own rate limit at the read API (`GET /orders/{order_id}`, 3 a
    minute here): her order details are `rate-limited`, with the read API's `Retry-After`; the
    breakers every caller shares stay closed, and another caller's dashboard is whole."""
    limits = {"GET /orders/{order_id}": "3/minute"}
    env = {
        "STRATA_RATE_LIMIT_ROUTES": json.dumps(limits),
        "STRATA_RATE_LIMIT_DEFAULT": "1000/second",
    }
    process = ReadApiProcess(shop.data_dir, free_port(), env)
    settings = bff_settings(process.url)  # breakers open after 2 failures
    with (
        process.running(),
        TestClient(create_web_app(settings)) as web,
        TestClient(create_mobile_app(settings)) as mobile,
    ):
        reloads = [web.get("/web/dashboard", headers=bearer(ADA)) for _ in range(3)]
        order = mobile.get(f"/mobile/orders/{shop.orders[-1]}", headers=bearer(ADA))
        metrics = web.get("/metrics").text
        operator = bearer(BOB, ["operator"])  # a caller with a count of its own
        others = web.get("/web/dashboard", params={"user_id": str(ADA)}, headers=operator)

    fulfilments = [[o["fulfilment"] for o in r.json()["recent_orders"]["items"]] for r in reloads]
    limited = [[f for f in each if f and f.get("reason") == "rate-limited"] for each in fulfilments]
    assert [len(each) for each in limited] == [2, 5, 5]
    assert all(f["unavailable"] is True and 1 <= f["retry_after"] <= 60 for f in limited[-1])
    detail = limited[-1][0]["detail"]
    assert detail.startswith("read API GET /orders/") and "127.0.0.1" not in detail
    assert order.json()["order"]["reason"] == "rate-limited"
    assert "ETag" not in order.headers and order.headers["Cache-Control"] == "no-store"
    assert breaker_state(metrics, "read-api:fulfilment") == 0
    assert breaker_state(metrics, "read-api:order") == 0
    assert others.json()["recent_orders"]["items"][0]["fulfilment"] == {
        "status": "running",
        "step": "payment",
        "attention": None,
    }


def test_a_wait_beyond_the_timeout_is_waited_for_and_behind_opens_no_breaker(shop: Shop) -> None:
    """`wait` (and the read API's default wait, for a `position` without one) adds to the
    timeout: the sections are `behind` once the read API says so, not cut at the timeout, and a
    read model behind is no failure of the read API."""
    settings = bff_settings(shop.read_api, bff_timeout_seconds=0.5)  # default wait: 2 s
    ahead = {"position": "users:99", "wait": "1.5"}
    with (
        TestClient(create_web_app(settings)) as web,
        TestClient(create_mobile_app(settings)) as mobile,
    ):
        started = time.monotonic()
        waited = [web.get("/web/dashboard", params=ahead, headers=bearer(ADA)) for _ in range(2)]
        took = time.monotonic() - started
        by_default = web.get("/web/dashboard", params={"position": "users:99"}, headers=bearer(ADA))
        orders = mobile.get(
            "/mobile/orders", params={"position": "orders:99", "wait": "1.5"}, headers=bearer(ADA)
        )
        metrics = web.get("/metrics").text

    for answer in (*waited, by_default):
        assert answer.json()["profile"]["reason"] == "behind", answer.text
        assert answer.json()["stats"]["reason"] == "behind"
    assert took >= 3
    assert orders.json()["orders"]["reason"] == "behind", orders.text
    assert breaker_state(metrics, "read-api:profile") == 0
    assert breaker_state(metrics, "read-api:stats") == 0
    assert breaker_state(metrics, "read-api:orders") == 0


def test_mobile_lets_an_operator_name_the_user_and_no_one_else(shop: Shop) -> None:
    operator = bearer("operator-1", ["operator"])  # a subject that is not a user
    with TestClient(create_mobile_app(bff_settings(shop.read_api))) as mobile:
        me = mobile.get("/mobile/me", params={"user_id": str(ADA)}, headers=operator)
        orders = mobile.get(
            "/mobile/orders", params={"user_id": str(ADA), "limit": 2}, headers=operator
        )
        nobody = mobile.get("/mobile/me", headers=operator)
        own = mobile.get("/mobile/me", params={"user_id": str(ADA)}, headers=bearer(ADA))
        other = mobile.get("/mobile/me", params={"user_id": str(BOB)}, headers=bearer(ADA))
        others_orders = mobile.get(
            "/mobile/orders", params={"user_id": str(BOB)}, headers=bearer(ADA)
        )

    assert me.status_code == 200 and me.json()["profile"] == {"id": str(ADA), "name": "Ada"}
    assert [o["id"] for o in orders.json()["orders"]["items"]] == [str(o) for o in shop.orders[:2]]
    assert_problem(nobody, 403, "pass user_id")
    assert own.status_code == 200 and own.json()["profile"]["name"] == "Ada"
    assert_problem(other, 403, "only an operator")
    assert_problem(others_orders, 403, "only an operator")


def test_the_bffs_refuse_a_repeated_parameter_and_take_ids_in_either_case(shop: Shop) -> None:
    """As the read API does: a parameter given twice is a 422 naming it; a UUID may be upper
    case (`domain.values.CANONICAL_UUID`)."""
    twice = "position=orders:1&position=orders:2"
    order_id = str(shop.orders[-1])
    with (
        TestClient(create_web_app(bff_settings(shop.read_api))) as web,
        TestClient(create_mobile_app(bff_settings(shop.read_api))) as mobile,
    ):
        dashboard_twice = web.get(f"/web/dashboard?{twice}", headers=bearer(ADA))
        orders_twice = mobile.get("/mobile/orders?limit=1&limit=2", headers=bearer(ADA))
        upper = mobile.get(f"/mobile/orders/{order_id.upper()}", headers=bearer(ADA))
        lower = mobile.get(f"/mobile/orders/{order_id}", headers=bearer(ADA))
        operator = bearer(BOB, ["operator"])
        named = mobile.get("/mobile/me", params={"user_id": str(ADA).upper()}, headers=operator)
        dashboard = web.get(
            "/web/dashboard", params={"user_id": str(ADA).upper()}, headers=operator
        )

    for refused, name in ((dashboard_twice, "position"), (orders_twice, "limit")):
        body = assert_problem(refused, 422, f"query.{name}")
        assert {"field": f"query.{name}", "message": "was given 2 times; give it once"} in body[
            "errors"
        ]
    assert order_id.upper() != order_id
    assert upper.status_code == 200, upper.text
    assert upper.json() == lower.json() and upper.headers["ETag"] == lower.headers["ETag"]
    assert named.json()["profile"] == {"id": str(ADA), "name": "Ada"}
    assert dashboard.status_code == 200 and dashboard.json()["user_id"] == str(ADA)
