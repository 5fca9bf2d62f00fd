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
from tests.support.breaker_flow import (
    BreakerWatch,
    check_outage_bounds_calls,
    check_recovery_closes,
)
from tests.support.fulfilment_shop import place_order, shop_client
from tests.support.servers import wait_until
from tests.support.simulators import CARRIER, PAYMENT_PROVIDER, RunningSimulator, process_fixture

provider = process_fixture(PAYMENT_PROVIDER)
carrier = process_fixture(CARRIER)
THRESHOLD = 3
ORDERS = 5


@pytest.fixture
def shop(
    settings: Settings, provider: RunningSimulator, carrier: RunningSimulator
) -> Iterator[TestClient]:
    # The outage must not outlast an authorization's deadline: no compensation here.
    policy = FulfilmentPolicy(authorize_timeout=timedelta(days=1))
    with shop_client(
        settings,
        provider,
        carrier,
        policy,
        breaker_failure_threshold=THRESHOLD,
        breaker_recovery_seconds=0.3,
        provider_retries=0,
        # The calls are counted exactly, as one caller makes them: with jobs run several at once,
        # the calls already under way when the breaker opens fail too (docs/config.md).
        job_concurrency=1,
    ) as client:
        yield client


def test_an_outage_opens_the_breaker_bounds_the_calls_and_recovery_closes_it(
    shop: TestClient, provider: RunningSimulator
) -> None:
    watch = BreakerWatch(lambda: shop.get("/metrics").text, provider.requests)
    provider.control(outage=True)
    before = watch.counts()
    orders = [place_order(shop, "12.00") for _ in range(ORDERS)]

    outage_end = check_outage_bounds_calls(watch, before, THRESHOLD, probes=3)
    provider.control()
    check_recovery_closes(watch, outage_end)

    def status(order: str) -> str:
        return str(shop.get(f"/orders/{order}").json()["status"])

    wait_until(lambda: all(status(o) == "shipped" for o in orders), 60, "every order ships")
    ledger = provider.ledger()
    for order in orders:  # (payments of earlier tests in a shared store may be in the ledger)
        prefix = f"{ids.payment_id(UUID(order))}:"
        operations = [op for op in ledger["operations"] if op["key"].startswith(prefix)]
        assert [op["kind"] for op in operations] == ["authorize", "capture"], order
        [reference] = {op["reference"] for op in operations if op.get("reference")}
        assert Decimal(ledger["authorizations"][reference]["net_charge"]) == Decimal("12.00")
