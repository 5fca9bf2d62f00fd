"""A provider call refused for good (a 4xx) parks its job, through the real payments worker and
the payment provider simulator over HTTP; the parked jobs show on the write API's /metrics."""

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import cast
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from contexts.payments.service import PAYMENT_PROVIDER_JOBS
from contexts.settings import Settings
from domain.ports import Job, SideRecords
from eventlog.jobs import JobTable, ManualClock
from tests.support.auth import OPERATOR
from tests.support.simulated_network import (
    CARRIER,
    PAYMENT_PROVIDER,
    base_url,
    simulated_network,
)
from tests.support.stepped_system import SteppedSystem, the_process_clock
from write_api.app import create_app


@pytest.fixture
def system(tmp_path: Path) -> Iterator[SteppedSystem]:
    clock = ManualClock()
    with the_process_clock(clock), simulated_network() as network:
        settings = Settings(
            data_dir=tmp_path / "var",
            payment_provider_url=base_url(PAYMENT_PROVIDER),
            carrier_url=base_url(CARRIER),
            provider_retries=0,
        )
        stepped = SteppedSystem(settings, network, clock)
        try:
            yield stepped
        finally:
            stepped.stop()


def _payment_jobs(system: SteppedSystem) -> JobTable:
    return cast(JobTable, system.services.payments.recorder)


def test_a_capture_the_provider_refuses_is_parked_not_retried(
    system: SteppedSystem, caplog: pytest.LogCaptureFixture
) -> None:
    payment, client = uuid4(), system.client
    body = {"order_id": str(uuid4()), "user_id": str(uuid4()), "amount": "20.00", "currency": "EUR"}
    assert client.post(f"/payments/{payment}/authorize", json=body).status_code == 201
    assert system.step(PAYMENT_PROVIDER_JOBS) == 1
    assert client.get(f"/payments/{payment}").json()["status"] == "authorized"

    system.network.forget(PAYMENT_PROVIDER)  # capturing now answers 404: no such authorization
    assert client.post(f"/payments/{payment}/capture").status_code == 200
    with caplog.at_level(logging.INFO, logger="strata.jobs"):
        assert system.step(PAYMENT_PROVIDER_JOBS) == 1
        for _ in range(3):
            system.clock.advance(timedelta(hours=1))
            assert system.step(PAYMENT_PROVIDER_JOBS) == 0

    (parked,) = _payment_jobs(system).parked_jobs(PAYMENT_PROVIDER_JOBS)
    assert parked.key == f"{payment}:capture" and parked.attempts == 1
    assert parked.reason.startswith("the provider refused it: POST http://payment-provider")
    assert "/capture: 404 no authorization 'auth_" in parked.reason, parked.reason
    (line,) = caplog.records
    assert (line.levelno, line.exc_info) == (logging.ERROR, None)
    assert system.network.ledger(PAYMENT_PROVIDER)["requests"] == 1
    assert client.get(f"/payments/{payment}").json()["status"] == "capturing"


def test_the_parked_jobs_are_a_gauge_on_metrics(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    with TestClient(create_app(settings), headers=OPERATOR) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        jobs = cast(JobTable, services.payments.recorder)
        due = ManualClock().now()
        services.payments.save(side_records=SideRecords(jobs=[Job("payment-provider", "x:y", due)]))
        metric = 'strata_jobs_parked{context="payments",kind="payment-provider"}'
        assert f"{metric} 0.0" in client.get("/metrics").text
        (claimed,) = jobs.claim_due_jobs(PAYMENT_PROVIDER_JOBS, due, 1, timedelta(hours=1))
        assert jobs.park_job(PAYMENT_PROVIDER_JOBS, "x:y", claimed.fence, "refused", due)
        assert f"{metric} 1.0" in client.get("/metrics").text
