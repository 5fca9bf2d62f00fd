"""The saga's deadlines (issue 9): durable jobs fired by their poller when their time comes, on
a clock the test moves by hand. A provider that stays down past a step's deadline makes the
saga compensate what was done; a late authorization is voided."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from contexts.fulfilment import ids
from contexts.fulfilment.definition import FulfilmentPolicy
from contexts.settings import Settings
from tests.support.clocks import JumpingClock
from tests.support.fulfilment_shop import place_order, shop_client
from tests.support.servers import wait_until
from tests.support.simulators import CARRIER, PAYMENT_PROVIDER, RunningSimulator, process_fixture

provider = process_fixture(PAYMENT_PROVIDER)
carrier = process_fixture(CARRIER)
PAST_ANY_DEADLINE = timedelta(minutes=5)


@pytest.fixture
def clock() -> JumpingClock:
    return JumpingClock()


@pytest.fixture
def shop(
    settings: Settings, provider: RunningSimulator, carrier: RunningSimulator, clock: JumpingClock
) -> Iterator[TestClient]:
    # Compensations here wait for the providers to come back, across the clock's jumps: none
    # may time out meanwhile (parking has tests of its own).
    policy = FulfilmentPolicy(compensation_timeout=timedelta(days=7))
    wiring = {"breaker_recovery_seconds": 0.2, "provider_retries": 0}
    with shop_client(settings, provider, carrier, policy, clock, **wiring) as client:
        yield client


def _place(client: TestClient) -> str:
    return place_order(client, "7.50", quantity=2)


def _saga(client: TestClient, order: str) -> dict[str, Any]:
    response = client.get(f"/fulfilments/{order}")
    return response.json() if response.status_code == 200 else {}


def _until(condition: Callable[[], bool], what: str, clock: JumpingClock | None = None) -> None:
    """Wait for `condition`; with a clock, jump it past every deadline and backoff meanwhile."""

    def moved() -> bool:
        if clock is not None:
            clock.jump(PAST_ANY_DEADLINE)
        return condition()

    wait_until(moved, 30, what)


def test_a_payment_provider_down_past_the_deadline_cancels_and_voids_the_late_authorization(
    shop: TestClient, provider: RunningSimulator, clock: JumpingClock
) -> None:
    provider.control(outage=True)
    order = _place(shop)
    _until(lambda: _saga(shop, order).get("step") == "authorize", "the saga asks for the payment")
    assert shop.get(f"/orders/{order}").json()["status"] == "placed"

    _until(lambda: _saga(shop, order).get("status") == "cancelled", "the deadline passes", clock)
    assert shop.get(f"/orders/{order}").json()["status"] == "cancelled"

    provider.control()  # back: the payment's job is tried again, and authorized, too late
    payment = f"/payments/{ids.payment_id(UUID(order))}"
    _until(lambda: shop.get(payment).json()["status"] == "voided", "the late one is voided", clock)
    assert _saga(shop, order)["status"] == "cancelled"


def test_a_carrier_down_past_the_deadline_cancels_the_booking_once_made_voids_and_cancels(
    shop: TestClient, carrier: RunningSimulator, clock: JumpingClock
) -> None:
    """The booking call may have reached the carrier: the shipment is cancelled once the
    carrier answers it, so no booking is left behind at the carrier."""
    carrier.control(outage=True)
    order = _place(shop)
    _until(lambda: _saga(shop, order).get("step") == "schedule", "the saga asks for a carrier")
    _until(
        lambda: _saga(shop, order).get("step") == "cancel_shipment",
        "the deadline passes and the saga asks for the shipment's cancellation",
        clock,
    )
    shipment_id = ids.shipment_id(UUID(order))
    assert shop.get(f"/shipments/{shipment_id}").json()["status"] == "requested"
    carrier.control()
    _until(lambda: _saga(shop, order).get("status") == "cancelled", "the carrier is back", clock)
    assert shop.get(f"/orders/{order}").json()["status"] == "cancelled"
    assert shop.get(f"/payments/{ids.payment_id(UUID(order))}").json()["status"] == "voided"
    assert shop.get(f"/shipments/{shipment_id}").json()["status"] == "cancelled"
    [booking] = carrier.ledger()["bookings"].values()
    assert booking["state"] == "cancelled"
