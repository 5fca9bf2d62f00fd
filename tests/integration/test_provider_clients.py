"""The HTTP clients of the payments and shipping contexts against the real simulator processes:
answers, idempotent retries, and the circuit breaker through a provider outage."""

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest
from prometheus_client import CollectorRegistry

from contexts.payments.ports import Authorization, ProviderUnavailable
from contexts.payments.provider import HttpPaymentProvider
from contexts.shipping.carrier import HttpCarrier
from contexts.shipping.ports import CarrierUnavailable
from runtime.resilience import (
    BreakerOpen,
    BreakerState,
    CircuitBreaker,
    DownstreamProtocolError,
    RetryPolicy,
    breaker_metrics,
    http_client,
)
from runtime.settings import CommonSettings
from tests.support.breaker_flow import state_of
from tests.support.processes import free_port
from tests.support.simulators import (
    CARRIER,
    PAYMENT_PROVIDER,
    RunningSimulator,
    process_fixture,
)

THRESHOLD = 3
RECOVERY = 0.5
ATTEMPTS = 3


provider_process = process_fixture(PAYMENT_PROVIDER)
carrier_process = process_fixture(CARRIER)


@pytest.fixture
def simulator(provider_process: RunningSimulator) -> RunningSimulator:
    provider_process.reset()
    return provider_process


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def breaker(registry: CollectorRegistry) -> CircuitBreaker:
    return CircuitBreaker(
        "payment-provider",
        failure_threshold=THRESHOLD,
        recovery_seconds=RECOVERY,
        metrics=breaker_metrics(registry),
    )


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with http_client(2.0) as made:
        yield made


RETRY = RetryPolicy(attempts=ATTEMPTS, first_wait=0.01, max_wait=0.05)


@pytest.fixture
def provider(
    simulator: RunningSimulator, client: httpx.Client, breaker: CircuitBreaker
) -> HttpPaymentProvider:
    return HttpPaymentProvider(simulator.base, client, breaker, RETRY)


def test_authorize_capture_refund_and_void(
    provider: HttpPaymentProvider, simulator: RunningSimulator
) -> None:
    approved = provider.authorize("p1:authorize", Decimal("30.00"), "EUR")
    assert approved.approved
    assert approved.reference
    provider.capture("p1:capture", approved.reference, Decimal("30.00"), "EUR")
    provider.refund("p1:refund", approved.reference, Decimal("30.00"), "EUR")
    assert provider.authorize("p2:authorize", Decimal("9.13"), "EUR") == Authorization(
        approved=False, reason="insufficient funds"
    )
    other = provider.authorize("p3:authorize", Decimal("5.00"), "EUR")
    assert other.reference
    provider.void("p3:void", other.reference)
    provider.void("p3:void", other.reference)  # a retry after a crash: the same answer
    records = simulator.ledger()["authorizations"]
    assert records[approved.reference]["state"] == "refunded"
    assert records[approved.reference]["net_charge"] == "0.00"
    assert records[other.reference]["state"] == "voided"


def test_a_request_the_provider_refuses_is_a_bug_not_an_outage(
    provider: HttpPaymentProvider, breaker: CircuitBreaker, simulator: RunningSimulator
) -> None:
    reference = provider.authorize("p1:authorize", Decimal("1.00"), "EUR").reference
    assert reference
    for attempt in range(THRESHOLD + 1):
        with pytest.raises(DownstreamProtocolError, match="409 cannot refund"):
            provider.refund(f"p1:refund{attempt}", reference, Decimal("1.00"), "EUR")
    assert breaker.state is BreakerState.CLOSED
    assert simulator.requests() == 1 + THRESHOLD + 1  # none retried


class LosesFirstAnswer(httpx.HTTPTransport):
    """Sends every request, but loses the first answer, as a timeout after the provider acted."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not self.lost:
            self.lost = True
            response.close()
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


def test_a_retry_after_a_lost_answer_carries_the_same_key_and_charges_once(
    simulator: RunningSimulator, breaker: CircuitBreaker
) -> None:
    with httpx.Client(transport=LosesFirstAnswer(), timeout=2) as client:
        provider = HttpPaymentProvider(simulator.base, client, breaker, RETRY)
        approved = provider.authorize("p1:authorize", Decimal("12.00"), "EUR")
    ledger = simulator.ledger()
    assert ledger["requests"] == 2
    assert [(op["key"], op["reference"]) for op in ledger["operations"]] == [
        ("p1:authorize", approved.reference)
    ]


def test_an_outage_opens_the_breaker_bounds_the_calls_and_a_probe_closes_it(
    provider: HttpPaymentProvider,
    simulator: RunningSimulator,
    breaker: CircuitBreaker,
    registry: CollectorRegistry,
) -> None:
    def state() -> float | None:
        labels = {"downstream": "payment-provider"}
        return registry.get_sample_value("strata_breaker_state", labels)

    simulator.control(outage=True)
    for _ in range(20):
        with pytest.raises(ProviderUnavailable):
            provider.authorize("p1:authorize", Decimal("1.00"), "EUR")
    assert breaker.state is BreakerState.OPEN
    assert state() == 2
    assert simulator.requests() == THRESHOLD  # one call's attempts opened it; none after

    with pytest.raises(ProviderUnavailable) as failed_fast:
        provider.authorize("p1:authorize", Decimal("1.00"), "EUR")
    assert isinstance(failed_fast.value.__cause__, BreakerOpen)

    time.sleep(RECOVERY + 0.1)  # still down: the one probe fails and it opens again
    with pytest.raises(ProviderUnavailable):
        provider.authorize("p1:authorize", Decimal("1.00"), "EUR")
    assert simulator.requests() == THRESHOLD + 1
    assert breaker.state is BreakerState.OPEN

    time.sleep(RECOVERY + 0.1)  # back, but slow: the probe is in flight while others call
    simulator.control(latency_ms=1000)
    requests_before = simulator.requests()

    def another_call() -> str:
        while simulator.requests() == requests_before:  # until the probe reached the provider
            time.sleep(0.01)
        try:
            provider.authorize("p2:authorize", Decimal("1.00"), "EUR")
        except ProviderUnavailable as error:
            return type(error.__cause__).__name__
        return "went through"

    with ThreadPoolExecutor(6) as pool:
        probed = pool.submit(provider.authorize, "p1:authorize", Decimal("1.00"), "EUR")
        others = [pool.submit(another_call) for _ in range(5)]
        assert [other.result(10) for other in others] == ["BreakerOpen"] * 5
        assert probed.result(10).approved
    assert simulator.requests() == requests_before + 1  # the probe alone
    assert state_of(breaker) is BreakerState.CLOSED
    assert state() == 0
    assert provider.authorize("p2:authorize", Decimal("1.00"), "EUR").approved


def test_the_carrier_books_dispatches_cancels_and_fails_over_to_unavailable(
    carrier_process: RunningSimulator, client: httpx.Client, registry: CollectorRegistry
) -> None:
    carrier_process.reset()
    settings = CommonSettings(
        carrier_url=carrier_process.base,
        breaker_failure_threshold=1,
        provider_retries=0,
    )
    carrier = HttpCarrier.from_settings(settings, client, breaker_metrics(registry))
    shipment, order = uuid.uuid4(), uuid.uuid4()
    booking = carrier.schedule(f"{shipment}:schedule", shipment, order)
    assert booking.accepted
    assert booking.carrier
    assert booking.reference
    carrier.dispatch(f"{shipment}:dispatch", booking.reference)
    with pytest.raises(DownstreamProtocolError):
        carrier.cancel(f"{shipment}:cancel", booking.reference)

    refused_order = uuid.uuid4()
    carrier_process.control(refuse_orders=[str(refused_order)])
    refused = carrier.schedule("s2:schedule", uuid.uuid4(), refused_order)
    assert (refused.accepted, refused.reason) == (False, "no carrier can take the shipment")

    carrier_process.control(outage=True)
    with pytest.raises(CarrierUnavailable):
        carrier.schedule("s3:schedule", uuid.uuid4(), uuid.uuid4())
    with pytest.raises(CarrierUnavailable) as failed_fast:
        carrier.schedule("s3:schedule", uuid.uuid4(), uuid.uuid4())
    assert isinstance(failed_fast.value.__cause__, BreakerOpen)
    labels = {"downstream": "carrier", "to": "open"}
    assert registry.get_sample_value("strata_breaker_transitions_total", labels) == 1


def test_an_unreachable_provider_is_unavailable(
    client: httpx.Client, breaker: CircuitBreaker
) -> None:
    nowhere = HttpPaymentProvider(f"http://127.0.0.1:{free_port()}", client, breaker, RETRY)
    with pytest.raises(ProviderUnavailable, match=r"POST http://127\.0\.0\.1"):
        nowhere.void("p1:void", "auth_x")
    assert breaker.state is BreakerState.OPEN  # THRESHOLD attempts, all refused
