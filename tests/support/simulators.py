"""The provider simulators as real processes (`strata-payment-provider`, `strata-carrier`) and
their control endpoints, as the tests drive them."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from tests.support.processes import entry_point, running_service


class SimulatorScript(NamedTuple):
    script: str
    port_variable: str
    ledger_variable: str


PAYMENT_PROVIDER = SimulatorScript(
    "strata-payment-provider", "STRATA_PAYMENT_PROVIDER_PORT", "STRATA_PAYMENT_PROVIDER_LEDGER"
)
CARRIER = SimulatorScript("strata-carrier", "STRATA_CARRIER_PORT", "STRATA_CARRIER_LEDGER")


@dataclass(frozen=True)
class RunningSimulator:
    base: str

    def control(self, **control: Any) -> None:
        """Replace the control: faults and rules (the others back to their defaults)."""
        httpx.put(f"{self.base}/control", json=control, timeout=5).raise_for_status()

    def ledger(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base}/control/ledger", timeout=5)
        response.raise_for_status()
        ledger: dict[str, Any] = response.json()
        return ledger

    def requests(self) -> int:
        return int(self.ledger()["requests"])

    def reset(self) -> None:
        httpx.post(f"{self.base}/control/reset", timeout=5).raise_for_status()

    def post(self, path: str, key: str | None, body: Any = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key is not None else {}
        return httpx.post(f"{self.base}{path}", json=body, headers=headers, timeout=5)


@contextmanager
def running_simulator(
    which: SimulatorScript, ledger: Path | None = None
) -> Iterator[RunningSimulator]:
    """The simulator process, its ledger in the file `ledger` (default: one of its own, in a
    temporary folder removed after it stops)."""
    with tempfile.TemporaryDirectory() as folder:
        env = {which.ledger_variable: str(ledger or Path(folder) / "ledger.sqlite")}
        with running_service(entry_point(which.script), env, which.port_variable) as (base, _):
            yield RunningSimulator(base)


def process_fixture(which: SimulatorScript) -> Any:
    """A module-scoped fixture running one simulator: `provider_process =
    process_fixture(PAYMENT_PROVIDER)` in a test module."""

    @pytest.fixture(scope="module")
    def running() -> Iterator[RunningSimulator]:
        with running_simulator(which) as simulator:
            yield simulator

    return running
