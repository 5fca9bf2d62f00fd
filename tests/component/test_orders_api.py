"""The orders endpoints, on the embedded store and on PostgreSQL."""

import pytest
from fastapi.testclient import TestClient

from tests.support.api import (
    add_line,
    assert_problem,
    create_order,
    register,
    store_state,
)


def test_an_order_goes_from_draft_to_shipped_with_exact_totals(client: TestClient) -> None:
    user = register(client)
    response = client.post("/orders", json={"user_id": user, "currency": "eur"})
    assert response.status_code == 201
    assert response.json()["position"].startswith("orders:")
    order = response.json()["id"]
    assert response.headers["Location"] == f"/orders/{order}"

    add_line(client, order, "SKU-1", 3, "0.10")
    add_line(client, order, "SKU-2", 1, "19.99")
    add_line(client, order, "SKU-3", 2, "5")
    assert client.delete(f"/orders/{order}/lines/SKU-3").status_code == 200

    state = client.get(f"/orders/{order}").json()
    assert state["status"] == "draft"
    assert state["currency"] == "EUR"
    assert state["total"] == "20.29"
    assert [(line["sku"], line["subtotal"]) for line in state["lines"]] == [
        ("SKU-1", "0.30"),
        ("SKU-2", "19.99"),
    ]
    for action, status in [("place", "placed"), ("pay", "paid"), ("ship", "shipped")]:
        result = client.post(f"/orders/{order}/{action}")
        assert result.status_code == 200, result.text
        assert client.get(f"/orders/{order}").json()["status"] == status
    assert client.get(f"/orders/{order}").json()["version"] == 8


@pytest.mark.parametrize("before_cancel", [[], ["place"], ["place", "pay"]])
def test_an_order_can_be_cancelled_before_it_ships(
    client: TestClient, before_cancel: list[str]
) -> None:
    order = create_order(client, register(client))
    add_line(client, order, "A", 1, "1.00")
    for action in before_cancel:
        assert client.post(f"/orders/{order}/{action}").status_code == 200
    response = client.post(f"/orders/{order}/cancel", json={"reason": "changed my mind"})
    assert response.status_code == 200
    assert client.get(f"/orders/{order}").json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("done", "action", "message"),
    [
        ([], "pay", "the order is draft, it must be placed"),
        ([], "ship", "the order is draft, it must be paid"),
        (["place"], "place", "the order is placed, it must be draft"),
        (["place"], "ship", "the order is placed, it must be paid"),
        (["place", "pay", "ship"], "cancel", "cannot cancel an order that is shipped"),
        (["cancel"], "cancel", "cannot cancel an order that is cancelled"),
        (["cancel"], "place", "the order is cancelled"),
    ],
)
def test_invalid_transitions_are_409_and_write_nothing(
    client: TestClient, done: list[str], action: str, message: str
) -> None:
    order = create_order(client, register(client))
    add_line(client, order, "A", 1, "1.00")
    reason = {"reason": "test"}
    for step in done:
        response = client.post(f"/orders/{order}/{step}", json=reason if step == "cancel" else None)
        assert response.status_code == 200
    before = store_state(client)
    response = client.post(f"/orders/{order}/{action}", json=reason if action == "cancel" else None)
    assert_problem(response, 409, message)
    assert store_state(client) == before


def test_lines_change_only_in_a_draft_and_an_empty_order_cannot_be_placed(
    client: TestClient,
) -> None:
    order = create_order(client, register(client))
    assert_problem(client.post(f"/orders/{order}/place"), 409, "without lines")
    add_line(client, order, "A", 1, "1.00")
    duplicate = client.post(
        f"/orders/{order}/lines", json={"sku": "A", "quantity": 1, "unit_price": "2"}
    )
    assert_problem(duplicate, 409, "already has a line for sku 'A'")
    assert_problem(client.delete(f"/orders/{order}/lines/B"), 409, "no line for sku 'B'")
    assert client.post(f"/orders/{order}/place").status_code == 200
    late = client.post(
        f"/orders/{order}/lines", json={"sku": "C", "quantity": 1, "unit_price": "1"}
    )
    assert_problem(late, 409, "cannot add a line")
    assert_problem(client.delete(f"/orders/{order}/lines/A"), 409, "cannot remove a line")


def test_a_line_that_would_bring_the_total_over_what_can_be_paid_is_409_and_writes_nothing(
    client: TestClient,
) -> None:
    order = create_order(client, register(client))
    add_line(client, order, "A", 1000, "999999999.99")
    add_line(client, order, "B", 1, "9.99")  # the total is exactly the largest amount
    state = client.get(f"/orders/{order}").json()
    before = store_state(client)

    for sku, quantity, price, total in [
        ("C", 1, "0.01", "1000000000000.00"),
        ("D", 1000, "999999999999.99", "1000999999999989.99"),  # the API's largest line
    ]:
        response = client.post(
            f"/orders/{order}/lines",
            json={"sku": sku, "quantity": quantity, "unit_price": price},
        )
        problem = assert_problem(
            response,
            409,
            f"the line would bring the order's total to {total},",
            "above the most an order can total, 999999999999.99",
        )
        assert problem["type"] == "/problems/rule-violated"

    assert store_state(client) == before
    assert client.get(f"/orders/{order}").json() == state
    assert state["total"] == "999999999999.99"
    assert client.post(f"/orders/{order}/place").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sku": "A", "quantity": 0, "unit_price": "1"}, "body.quantity"),
        ({"sku": "A", "quantity": 1001, "unit_price": "1"}, "body.quantity"),
        ({"sku": "A", "quantity": 1, "unit_price": "-0.01"}, "body.unit_price"),
        ({"sku": "A", "quantity": 1, "unit_price": "1.001"}, "body.unit_price"),
        ({"sku": "A", "quantity": 1, "unit_price": "NaN"}, "body.unit_price"),
        ({"sku": "A", "quantity": 1.5, "unit_price": "1"}, "body.quantity"),
        ({"sku": "has space", "quantity": 1, "unit_price": "1"}, "body.sku"),
        ({"sku": "A" * 65, "quantity": 1, "unit_price": "1"}, "body.sku"),
        ({"quantity": 1, "unit_price": "1"}, "body.sku"),
    ],
)
def test_malformed_lines_are_422_naming_the_field(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    order = create_order(client, register(client))
    before = store_state(client)
    assert_problem(client.post(f"/orders/{order}/lines", json=body), 422, field)
    assert store_state(client) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "nope", "currency": "EUR"}, "body.user_id"),
        ({"user_id": "00000000-0000-4000-8000-000000000000", "currency": "EURO"}, "body.currency"),
        ({"user_id": "00000000-0000-4000-8000-000000000000", "currency": "XYZ"}, "body.currency"),
    ],
)
def test_malformed_order_creation_is_422(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    before = store_state(client)
    assert_problem(client.post("/orders", json=body), 422, field)
    assert store_state(client) == before


def test_orders_need_an_existing_active_user(client: TestClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    before = store_state(client)
    response = client.post("/orders", json={"user_id": missing, "currency": "EUR"})
    body = assert_problem(response, 422, f"has not heard of a user with id {missing}")
    assert body["type"] == "/problems/unknown-reference"
    user = register(client)
    assert client.post(f"/users/{user}/deactivate").status_code == 200
    after_user_changes = store_state(client)
    assert after_user_changes[1] == before[1]
    response = client.post("/orders", json={"user_id": user, "currency": "EUR"})
    assert_problem(response, 409, "deactivated")
    assert store_state(client) == after_user_changes


def test_cancel_needs_a_reason_and_unknown_orders_are_404(client: TestClient) -> None:
    order = create_order(client, register(client))
    assert_problem(client.post(f"/orders/{order}/cancel", json={"reason": ""}), 422, "body.reason")
    assert_problem(client.post(f"/orders/{order}/cancel"), 422, "body")
    missing = "00000000-0000-4000-8000-000000000000"
    assert_problem(client.get(f"/orders/{missing}"), 404, "no Order")
    assert_problem(client.post(f"/orders/{missing}/place"), 404, "no Order")


@pytest.mark.parametrize("currency", ["XXX", "XTS", "XAU", "XDR", "CLF", "UYW"])
def test_an_order_in_a_code_that_is_not_a_currency_of_payment_is_422_on_the_currency(
    client: TestClient, currency: str
) -> None:
    user = register(client)
    before = store_state(client)
    response = client.post("/orders", json={"user_id": user, "currency": currency})
    body = assert_problem(response, 422, "body.currency")
    assert f"{currency} is not a currency of payment" in body["errors"][0]["message"]
    assert store_state(client) == before


@pytest.mark.parametrize(
    ("currency", "price", "shown"),
    [
        ("JPY", "500", ("500", "1500")),
        ("BHD", "0.25", ("0.250", "0.750")),
        ("EUR", "5", ("5.00", "15.00")),
    ],
)
def test_an_order_shows_its_amounts_with_its_currency_s_minor_units(
    client: TestClient, currency: str, price: str, shown: tuple[str, str]
) -> None:
    order = create_order(client, register(client), currency)
    add_line(client, order, "TEA", 3, price)
    state = client.get(f"/orders/{order}").json()
    line = state["lines"][0]
    assert (line["unit_price"], line["subtotal"]) == shown
    assert state["total"] == shown[1]


@pytest.mark.parametrize(("currency", "price"), [("JPY", "1500.50"), ("KRW", "0.1")])
def test_a_price_in_a_currency_without_minor_unit_is_a_whole_number(
    client: TestClient, currency: str, price: str
) -> None:
    order = create_order(client, register(client), currency)
    add_line(client, order, "WHOLE", 1, "1500")
    before = store_state(client)
    response = client.post(
        f"/orders/{order}/lines", json={"sku": "PART", "quantity": 1, "unit_price": price}
    )
    assert_problem(
        response, 422, f"unit_price {price}: {currency} has no minor unit: a price in {currency}"
    )
    assert store_state(client) == before
