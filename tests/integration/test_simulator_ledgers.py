"""The simulators keep their ledgers in a file, as a provider never forgets: killed (SIGKILL)
after answering, a simulator started again on the same file knows every operation it answered,
in the state it left it, and answers a retried key as the first time."""

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from simulators.ledger import Ledger
from simulators.payment_provider import create_app as create_payment_provider
from tests.support.processes import entry_point, running_service
from tests.support.simulators import CARRIER, PAYMENT_PROVIDER, RunningSimulator, SimulatorScript

EUR_20 = {"amount": "20.00", "currency": "EUR"}


@contextmanager
def started(which: SimulatorScript, ledger: Path) -> Iterator[RunningSimulator]:
    """The simulator on `ledger`, killed with SIGKILL at the end (never stopped cleanly)."""
    env = {which.ledger_variable: str(ledger)}
    with running_service(entry_point(which.script), env, which.port_variable) as (base, process):
        yield RunningSimulator(base)
        _kill(process)


def _kill(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def test_the_provider_knows_its_authorizations_after_a_kill(tmp_path: Path) -> None:
    ledger = tmp_path / "payment-provider.sqlite"
    with started(PAYMENT_PROVIDER, ledger) as provider:
        held = provider.post("/authorizations", "a1", EUR_20).json()
        taken = provider.post("/authorizations", "a2", EUR_20).json()["reference"]
        capture = provider.post(f"/authorizations/{taken}/capture", "c2", EUR_20)
        assert capture.status_code == 200, capture.text
        before = provider.ledger()

    with started(PAYMENT_PROVIDER, ledger) as provider:
        assert provider.post("/authorizations", "a1", EUR_20).json() == held
        assert provider.post(f"/authorizations/{taken}/capture", "c2", EUR_20).json() == (
            capture.json()
        )
        after = provider.ledger()
        assert (after["operations"], after["authorizations"]) == (
            before["operations"],
            before["authorizations"],
        )
        void = provider.post(f"/authorizations/{held['reference']}/void", "v1")
        assert void.json() == {"reference": held["reference"], "state": "voided"}


def test_the_carrier_knows_its_bookings_after_a_kill(tmp_path: Path) -> None:
    ledger = tmp_path / "carrier.sqlite"
    shipment = {"shipment_id": str(uuid.uuid4()), "order_id": str(uuid.uuid4())}
    with started(CARRIER, ledger) as carrier:
        booked = carrier.post("/bookings", "b1", shipment).json()
        assert booked["state"] == "accepted"

    with started(CARRIER, ledger) as carrier:
        assert carrier.post("/bookings", "b1", shipment).json() == booked
        dispatched = carrier.post(f"/bookings/{booked['reference']}/dispatch", "d1")
        assert dispatched.json() == {"reference": booked["reference"], "state": "dispatched"}
        assert carrier.ledger()["bookings"][booked["reference"]]["state"] == "dispatched"


def test_a_simulator_stopped_cleanly_closes_its_ledger(tmp_path: Path) -> None:
    """Its last connection closed, SQLite folds the write-ahead log back into the file."""
    ledger = tmp_path / "payment-provider.sqlite"
    with TestClient(create_payment_provider(ledger)) as provider:
        held = provider.post("/authorizations", json=EUR_20, headers={"Idempotency-Key": "a1"})
        assert held.status_code == 200, held.text
        assert ledger.with_name(f"{ledger.name}-wal").exists()

    assert not ledger.with_name(f"{ledger.name}-wal").exists()
    assert Ledger(ledger).summary()["operations"][0]["key"] == "a1"
