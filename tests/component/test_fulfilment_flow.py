"""An order's fulfilment through the whole system in one process (issue 9), on SQLite and on the
stack's stores, against the provider simulators as real processes: the saga drives payments and
shipping by their events, they call the providers through their workers, and the order ends
shipped, or cancelled with nothing charged."""

from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from contexts.fulfilment import ids
from contexts.settings import Settings
from tests.support.api import add_line, assert_problem, create_order, register
from tests.support.auth import OPERATOR
from tests.support.servers import wait_until
from tests.support.simulators import (
    CARRIER,
    PAYMENT_PROVIDER,
    RunningSimulator,
    process_fixture,
)
from write_api.app import create_app

provider = process_fixture(PAYMENT_PROVIDER)
carrier = process_fixture(CARRIER)


@pytest.fixture
def shop(
    settings: Settings, provider: RunningSimulator, carrier: RunningSimulator
) -> Iterator[TestClient]:
    provider.reset()
    carrier.reset()
    wired = settings.model_copy(
        update={"payment_provider_url": provider.base, "carrier_url": carrier.base}
    )
    with TestClient(create_app(wired), headers=OPERATOR) as client:
        yield client


def _place(client: TestClient, price: str) -> str:
    order = create_order(client, register(client))
    add_line(client, order, "A", 1, price)
    assert client.post(f"/orders/{order}/place").status_code == 200
    return order


def _fulfilment(client: TestClient, order: str) -> dict[str, Any]:
    response = client.get(f"/fulfilments/{order}")
    return response.json() if response.status_code == 200 else {}


def _ends(client: TestClient, order: str, status: str) -> dict[str, Any]:
    wait_until(
        lambda: _fulfilment(client, order).get("status") == status,
        30,
        f"the fulfilment of {order} is {status}: {_fulfilment(client, order)}",
    )
    return _fulfilment(client, order)


def _payment_ledger(provider: RunningSimulator, order: str) -> tuple[list[str], Decimal]:
    """The provider's operations on the order's payment (their kinds), and its net charge."""
    prefix = f"{ids.payment_id(UUID(order))}:"
    ledger = provider.ledger()
    operations = [op for op in ledger["operations"] if op["key"].startswith(prefix)]
    references = {op["reference"] for op in operations if op.get("reference")}
    net = sum(
        (Decimal(ledger["authorizations"][ref]["net_charge"]) for ref in references), Decimal(0)
    )
    return [op["kind"] for op in operations], net


def test_a_placed_order_is_paid_and_shipped(shop: TestClient, provider: RunningSimulator) -> None:
    order = _place(shop, "20.00")
    saga = _ends(shop, order, "completed")
    assert shop.get(f"/orders/{order}").json()["status"] == "shipped"
    assert [step["name"] for step in saga["steps"]][:6] == [
        "authorize",
        "schedule",
        "capture",
        "mark_paid",
        "dispatch",
        "mark_shipped",
    ]
    assert saga["definition_version"] == 1
    assert _payment_ledger(provider, order) == (["authorize", "capture"], Decimal("20.00"))
    assert_problem(shop.post(f"/fulfilments/{order}/retry"), 409, "completed, not parked")


def test_an_order_placed_with_a_total_no_payment_can_hold_stalls_no_other_saga(
    shop: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Such an order, placed before the orders refused its lines, gets no saga and holds no
    later order up: its `Placed` is not an event the saga's intake retries forever."""
    unpayable = create_order(shop, register(shop))
    orders = shop.app.state.services.orders  # type: ignore[attr-defined]
    draft = orders.repository.get(UUID(unpayable))
    for sku in ("A", "B"):
        draft.trigger_event(
            draft.LineAdded, sku=sku, quantity=1000, unit_price=Decimal("999999999999.99")
        )
    draft.trigger_event(draft.Placed, total=draft.total)
    orders.save(draft)

    later = _place(shop, "20.00")
    _ends(shop, later, "completed")
    assert _fulfilment(shop, unpayable) == {}
    assert shop.get(f"/orders/{unpayable}").json()["status"] == "placed"
    assert f"order {unpayable} cannot be paid" in caplog.text


def test_a_declined_payment_cancels_the_order(shop: TestClient, provider: RunningSimulator) -> None:
    order = _place(shop, "10.13")  # the simulator declines amounts ending in .13
    saga = _ends(shop, order, "cancelled")
    assert "declined" in saga["reason"]
    assert shop.get(f"/orders/{order}").json()["status"] == "cancelled"
    assert _payment_ledger(provider, order) == (["authorize"], Decimal(0))


def test_no_carrier_voids_the_payment_and_cancels_the_order(
    shop: TestClient, provider: RunningSimulator, carrier: RunningSimulator
) -> None:
    carrier.control(refuse_rate=1.0)
    order = _place(shop, "30.00")
    _ends(shop, order, "cancelled")
    payment = shop.get(f"/payments/{ids.payment_id(UUID(order))}").json()
    assert payment["status"] == "voided"
    assert shop.get(f"/orders/{order}").json()["status"] == "cancelled"
    assert _payment_ledger(provider, order) == (["authorize", "void"], Decimal(0))


def test_an_order_paid_by_hand_early_is_shipped_after_one_capture(
    shop: TestClient, provider: RunningSimulator
) -> None:
    provider.control(outage=True)  # the saga cannot get past the authorization meanwhile
    order = _place(shop, "40.00")
    assert shop.post(f"/orders/{order}/pay").status_code == 200
    wait_until(
        lambda: _fulfilment(shop, order).get("order") == "paid",
        30,
        f"the saga of {order} knows it was paid by hand: {_fulfilment(shop, order)}",
    )
    assert _fulfilment(shop, order)["step"] == "authorize"
    provider.control()
    saga = _ends(shop, order, "completed")
    mark_paid = next(step for step in saga["steps"] if step["name"] == "mark_paid")
    assert (mark_paid["state"], mark_paid["detail"]) == ("done", {"by": "operator"})
    assert shop.get(f"/orders/{order}").json()["status"] == "shipped"
    assert _payment_ledger(provider, order) == (["authorize", "capture"], Decimal("40.00"))
