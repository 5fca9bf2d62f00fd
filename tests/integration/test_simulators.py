"""The provider simulators as real processes: their rules, idempotency keys, faults and ledgers."""

import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.support.processes import entry_point
from tests.support.simulators import (
    CARRIER,
    PAYMENT_PROVIDER,
    RunningSimulator,
    process_fixture,
)

provider_process = process_fixture(PAYMENT_PROVIDER)
carrier_process = process_fixture(CARRIER)


@pytest.fixture
def provider(provider_process: RunningSimulator) -> RunningSimulator:
    provider_process.reset()
    return provider_process


@pytest.fixture
def carrier(carrier_process: RunningSimulator) -> RunningSimulator:
    carrier_process.reset()
    return carrier_process


def authorize(provider: RunningSimulator, amount: str = "12.30", key: str = "a1") -> str:
    response = provider.post("/authorizations", key, {"amount": amount, "currency": "EUR"})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "approved"
    return str(response.json()["reference"])


def problem_type(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return str(response.json()["type"])


# --- payment provider -------------------------------------------------------------------------


def test_an_authorization_is_recorded_once_per_key(provider: RunningSimulator) -> None:
    reference = authorize(provider, "12.3")
    again = provider.post("/authorizations", "a1", {"amount": "12.30", "currency": "EUR"})
    assert again.json() == {"state": "approved", "reference": reference}
    other = provider.post("/authorizations", "a1", {"amount": "12.31", "currency": "EUR"})
    assert other.status_code == 422
    assert problem_type(other) == "/problems/idempotency-key-reused"
    ledger = provider.ledger()
    assert ledger["requests"] == 3
    assert ledger["operations"] == [
        {
            "key": "a1",
            "kind": "authorize",
            "amount": "12.30",
            "currency": "EUR",
            "state": "approved",
            "reference": reference,
        }
    ]
    assert ledger["authorizations"][reference]["state"] == "authorized"


def test_declines_follow_the_cents_rule_and_the_control(provider: RunningSimulator) -> None:
    declined = provider.post("/authorizations", "d1", {"amount": "10.13", "currency": "EUR"})
    assert declined.json() == {"state": "declined", "reason": "insufficient funds"}
    provider.control(decline_cents=None, decline_amounts=["99.00"])
    assert authorize(provider, "10.13", key="d2")
    declined = provider.post("/authorizations", "d3", {"amount": "99", "currency": "EUR"})
    assert declined.json()["state"] == "declined"
    provider.control(decline_rate=1)
    declined = provider.post("/authorizations", "d4", {"amount": "5", "currency": "EUR"})
    assert declined.json()["state"] == "declined"
    assert provider.ledger()["authorizations"].keys() == {
        op["reference"] for op in provider.ledger()["operations"] if op["state"] == "approved"
    }


def test_capture_then_refunds_leave_the_net_charge(provider: RunningSimulator) -> None:
    reference = authorize(provider, "20.00")
    path = f"/authorizations/{reference}"
    refund_first = provider.post(f"{path}/refund", "r0", {"amount": "1", "currency": "EUR"})
    assert refund_first.status_code == 409
    assert problem_type(refund_first) == "/problems/rule-violated"
    over = provider.post(f"{path}/capture", "c0", {"amount": "20.01", "currency": "EUR"})
    assert over.status_code == 422
    wrong = provider.post(f"{path}/capture", "c0", {"amount": "20.00", "currency": "USD"})
    assert wrong.status_code == 422
    captured = provider.post(f"{path}/capture", "c1", {"amount": "20.00", "currency": "EUR"})
    assert captured.json() == {"reference": reference, "state": "captured"}
    assert (
        provider.post(f"{path}/capture", "c2", {"amount": "20", "currency": "EUR"}).status_code
        == 409
    )
    assert provider.post(f"{path}/void", "v1").status_code == 409
    for key in ("r1", "r1"):
        refund = provider.post(f"{path}/refund", key, {"amount": "5.50", "currency": "EUR"})
        assert refund.json() == {"reference": reference, "state": "captured"}
    too_much = provider.post(f"{path}/refund", "r2", {"amount": "14.51", "currency": "EUR"})
    assert too_much.status_code == 422
    rest = provider.post(f"{path}/refund", "r3", {"amount": "14.50", "currency": "EUR"})
    assert rest.json()["state"] == "refunded"
    record = provider.ledger()["authorizations"][reference]
    assert record == {
        "amount": "20.00",
        "currency": "EUR",
        "state": "refunded",
        "captured": "20.00",
        "refunded": "20.00",
        "net_charge": "0.00",
    }
    kinds = [op["kind"] for op in provider.ledger()["operations"]]
    assert kinds == ["authorize", "capture", "refund", "refund"]


def test_void_only_before_a_capture(provider: RunningSimulator) -> None:
    reference = authorize(provider)
    path = f"/authorizations/{reference}"
    assert provider.post(f"{path}/void", "v1").json() == {"reference": reference, "state": "voided"}
    assert provider.post(f"{path}/void", "v1").json()["state"] == "voided"  # the same key
    assert provider.post(f"{path}/void", "v2").status_code == 409
    capture = provider.post(f"{path}/capture", "c1", {"amount": "1", "currency": "EUR"})
    assert capture.status_code == 409
    assert provider.ledger()["authorizations"][reference]["net_charge"] == "0.00"
    unknown = provider.post("/authorizations/auth_nope/void", "v3")
    assert unknown.status_code == 404


def test_bad_requests_are_problems(provider: RunningSimulator) -> None:
    no_key = provider.post("/authorizations", None, {"amount": "1", "currency": "EUR"})
    assert no_key.status_code == 422
    assert no_key.json()["errors"][0]["field"] == "header.Idempotency-Key"
    for body in ({"amount": 1, "currency": "EUR"}, {"amount": "1.001", "currency": "EUR"}):
        assert provider.post("/authorizations", "k", body).status_code == 422
    assert provider.ledger()["operations"] == []


def test_one_key_sent_at_once_from_many_threads_is_performed_once(
    provider: RunningSimulator,
) -> None:
    provider.control(latency_ms=100)
    body = {"amount": "7.00", "currency": "EUR"}
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda _: provider.post("/authorizations", "same", body).json(), range(16))
        )
    assert len({answer["reference"] for answer in answers}) == 1
    assert len(provider.ledger()["operations"]) == 1
    assert provider.ledger()["requests"] == 16


# --- faults and control -----------------------------------------------------------------------


def test_an_outage_answers_503_and_records_nothing(provider: RunningSimulator) -> None:
    provider.control(outage=True, latency_ms=5000)
    started = time.monotonic()
    response = provider.post("/authorizations", "o1", {"amount": "1", "currency": "EUR"})
    assert response.status_code == 503
    assert time.monotonic() - started < 5  # at once: the latency does not apply
    assert problem_type(response) == "/problems/service-unavailable"
    provider.control(error_rate=1)
    assert (
        provider.post("/authorizations", "o2", {"amount": "1", "currency": "EUR"}).status_code
        == 503
    )
    ledger = provider.ledger()
    assert (ledger["requests"], ledger["operations"]) == (2, [])


def test_latency_delays_each_operation(provider: RunningSimulator) -> None:
    provider.control(latency_ms=300)
    started = time.monotonic()
    authorize(provider)
    assert time.monotonic() - started >= 0.3


def test_the_control_reads_back_refuses_bad_values_and_resets(
    provider: RunningSimulator,
) -> None:
    provider.control(latency_ms=5, error_rate=0.5, decline_amounts=["3.00"])
    control = httpx.get(f"{provider.base}/control").json()
    assert control == {
        "latency_ms": 5,
        "error_rate": 0.5,
        "outage": False,
        "decline_cents": 13,
        "decline_amounts": ["3.00"],
        "decline_rate": 0.0,
    }
    for bad in (
        {"error_rate": 2},
        {"latency_ms": -1},
        {"surprise": True},
        {"outage": "yes"},
        {"latency_ms": "5"},
        {"decline_cents": 13.0},
    ):
        response = httpx.put(f"{provider.base}/control", json=bad)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"].startswith("body.")
    assert httpx.get(f"{provider.base}/control").json() == control
    provider.reset()
    assert httpx.get(f"{provider.base}/control").json()["error_rate"] == 0
    assert provider.ledger() == {"requests": 0, "operations": [], "authorizations": {}}


# --- carrier ----------------------------------------------------------------------------------


def book(carrier: RunningSimulator, key: str, order_id: uuid.UUID | None = None) -> dict[str, str]:
    body = {"shipment_id": str(uuid.uuid4()), "order_id": str(order_id or uuid.uuid4())}
    response = carrier.post("/bookings", key, body)
    assert response.status_code == 200, response.text
    answer: dict[str, str] = response.json()
    return answer


def test_a_booking_is_dispatched_or_cancelled_once(carrier: RunningSimulator) -> None:
    first, second = book(carrier, "b1"), book(carrier, "b2")
    assert first["state"] == "accepted"
    assert first["carrier"]
    dispatched = carrier.post(f"/bookings/{first['reference']}/dispatch", "d1")
    assert dispatched.json() == {"reference": first["reference"], "state": "dispatched"}
    assert carrier.post(f"/bookings/{first['reference']}/cancel", "x1").status_code == 409
    assert (
        carrier.post(f"/bookings/{second['reference']}/cancel", "x2").json()["state"] == "cancelled"
    )
    assert carrier.post(f"/bookings/{second['reference']}/dispatch", "d2").status_code == 409
    assert carrier.post("/bookings/bk_nope/dispatch", "d3").status_code == 404
    bookings = carrier.ledger()["bookings"]
    assert {ref: b["state"] for ref, b in bookings.items()} == {
        first["reference"]: "dispatched",
        second["reference"]: "cancelled",
    }


def test_a_booking_key_is_performed_once(carrier: RunningSimulator) -> None:
    body = {"shipment_id": str(uuid.uuid4()), "order_id": str(uuid.uuid4())}
    answers = [carrier.post("/bookings", "same", body).json() for _ in range(3)]
    assert answers[0] == answers[1] == answers[2]
    other = {**body, "order_id": str(uuid.uuid4())}
    assert carrier.post("/bookings", "same", other).status_code == 422
    assert len(carrier.ledger()["bookings"]) == 1


def test_refusals_follow_the_control(carrier: RunningSimulator) -> None:
    refused_order = uuid.uuid4()
    carrier.control(refuse_orders=[str(refused_order)])
    assert book(carrier, "r1", refused_order) == {
        "state": "refused",
        "reason": "no carrier can take the shipment",
    }
    assert book(carrier, "r2")["state"] == "accepted"
    carrier.control(refuse_rate=1)
    assert book(carrier, "r3")["state"] == "refused"
    assert len(carrier.ledger()["bookings"]) == 1


def test_the_carrier_has_the_same_faults(carrier: RunningSimulator) -> None:
    carrier.control(outage=True)
    body = {"shipment_id": str(uuid.uuid4()), "order_id": str(uuid.uuid4())}
    assert carrier.post("/bookings", "f1", body).status_code == 503
    assert carrier.ledger()["requests"] == 1
    assert carrier.ledger()["operations"] == []


# --- the processes ----------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["strata-payment-provider", "strata-carrier"])
@pytest.mark.parametrize("args", [["--port", "0"], ["--port", "x"], ["--nope"]])
def test_bad_arguments_are_one_line_and_exit_2(script: str, args: list[str]) -> None:
    path = entry_point(script)
    assert path
    done = subprocess.run([path, *args], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"{script}: ")


@pytest.mark.parametrize(
    ("script", "variable"),
    [
        ("strata-payment-provider", "STRATA_PAYMENT_PROVIDER_LEDGER"),
        ("strata-carrier", "STRATA_CARRIER_LEDGER"),
    ],
)
def test_a_ledger_that_cannot_be_opened_stops_the_start_in_one_line(
    script: str, variable: str, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    env = {**os.environ, variable: str(tmp_path / "a-file" / "ledger.sqlite")}
    path = entry_point(script)
    assert path
    done = subprocess.run(
        [path, "--port", "1"], capture_output=True, text=True, timeout=30, check=False, env=env
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"{script}: the ledger {tmp_path}/a-file/ledger.sqlite cannot")


def test_amounts_are_normalised_to_cents_in_the_ledger(provider: RunningSimulator) -> None:
    authorize(provider, "7.5")
    assert Decimal(provider.ledger()["operations"][0]["amount"]) == Decimal("7.50")
    assert provider.ledger()["operations"][0]["amount"] == "7.50"
