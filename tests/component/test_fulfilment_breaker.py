"""A payment provider outage in the middle of fulfilments, in one process (issue 9): the payments
service's breaker opens, the calls reaching the provider stay bounded while the orders' payment
jobs keep retrying, half-open lets one probe through at a time, and once the provider is back the
breaker closes and every order ends shipped with one capture (tests/support/breaker_flow.py)."""

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from contexts.fulfilment import ids
from contexts.fulfilment.definition import FulfilmentPolicy
from contexts.settings import Settings
from tests.support.api import add_line, create_order, register
from tests.support.breaker_flow import (
    BreakerWatch,
    check_outage_bounds_calls,
    check_recovery_closes,
)
from tests.support.servers import wait_until
from tests.support.simulators import CARRIER, PAYMENT_PROVIDER, RunningSimulator, process_fixture
from write_api.app import create_app

provider = process_fixture(PAYMENT_PROVIDER)
carrier = process_fixture(CARRIER)
THRESHOLD = 3
ORDERS = 5


@pytest.fixture
def shop(
    settings: Settings, provider: RunningSimulator, carrier: RunningSimulator
) -> Iterator[TestClient]:
    provider.reset()
    carrier.reset()
    wired = settings.model_copy(
        update={
            "payment_provider_url": provider.base,
            "carrier_url": carrier.base,
            "breaker_failure_threshold": THRESHOLD,
            "breaker_recovery_seconds": 0.3,
            "provider_retries": 0,
        }
    )
    with TestClient(create_app(wired)) as client:
        # The outage must not outlast an authorization's deadline: no compensation here.
        client.app.state.services["fulfilment"].policy = FulfilmentPolicy(  # type: ignore[attr-defined]
            authorize_timeout=timedelta(days=1)
        )
        yield client


def _place(client: TestClient) -> str:
    order = create_order(client, register(client))
    add_line(client, order, "A", 1, "12.00")
    assert client.post(f"/orders/{order}/place").status_code == 200
    return order


def test_an_outage_opens_the_breaker_bounds_the_calls_and_recovery_closes_it(
    shop: TestClient, provider: RunningSimulator
) -> None:
    watch = BreakerWatch(lambda: shop.get("/metrics").text, provider.requests)
    before = watch.counts()
    provider.control(outage=True)
    orders = [_place(shop) for _ in range(ORDERS)]

    outage_end = check_outage_bounds_calls(watch, before, THRESHOLD, probes=3)
    provider.control()
    check_recovery_closes(watch, outage_end)

    def status(order: str) -> str:
        return str(shop.get(f"/orders/{order}").json()["status"])

    wait_until(lambda: all(status(o) == "shipped" for o in orders), 60, "every order ships")
    ledger = provider.ledger()
    for order in orders:
        prefix = f"{ids.payment_id(UUID(order))}:"
        kinds = [op["kind"] for op in ledger["operations"] if op["key"].startswith(prefix)]
        assert kinds == ["authorize", "capture"], order
    captured = [a for a in ledger["authorizations"].values() if Decimal(a["net_charge"])]
    assert len(captured) == ORDERS
