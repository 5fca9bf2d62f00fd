"""What the Quickstart starts fulfils orders out of the box (issue 9): `strata` with no provider
URL runs both simulators in its process, and a placed order ends shipped with one capture, even
when the process is killed while a provider call is under way; killed, its simulators still know
what they answered."""

import os
import signal
from decimal import Decimal
from pathlib import Path

from tests.support.processes import entry_point, free_port, running_service
from tests.support.servers import wait_until
from tests.support.shop import Shop
from tests.support.simulators import PAYMENT_PROVIDER, RunningSimulator, running_simulator

ALL_IN_ONE = entry_point("strata")


def test_the_all_in_one_process_ships_a_placed_order_on_its_own_simulators(
    tmp_path: Path,
) -> None:
    env = {"STRATA_DATA_DIR": str(tmp_path / "var")}
    with running_service(ALL_IN_ONE, env, "STRATA_PORT") as (base, process):
        shop = Shop(base, base, base, f"{base}/simulators/payment-provider")
        order = shop.place("20.00")
        wait_until(lambda: shop.ending(order) is not None, 30, f"{order} ends: {shop.saga(order)}")
        assert shop.assert_ended_well(order) == "shipped"
        assert shop.charges(order) == (1, Decimal(20))
    output = process.stdout.read() if process.stdout else ""
    assert f"payment-provider simulator, in this process: {base}/simulators/" in output


def test_an_order_whose_authorization_was_under_way_when_the_process_was_killed_still_ships(
    tmp_path: Path,
) -> None:
    """kill -9 while the provider holds the authorize call: the job's lease (10 s) ends after
    the restart, well inside the step's 30 s deadline, so the job runs again with its key and
    the order ships with one capture instead of being cancelled as timed out."""
    with running_simulator(PAYMENT_PROVIDER) as provider:
        provider.control(latency_ms=3000)
        env = {
            "STRATA_DATA_DIR": str(tmp_path / "var"),
            "STRATA_PAYMENT_PROVIDER_URL": provider.base,
        }
        port = free_port()
        with running_service(ALL_IN_ONE, env, "STRATA_PORT", port=port) as (base, process):
            order = Shop(base, base, base, provider.base).place("20.00")
            wait_until(lambda: provider.requests() > 0, 10, "the authorize call is under way")
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        provider.control(latency_ms=0)
        with running_service(ALL_IN_ONE, env, "STRATA_PORT", port=port) as (base, _):
            shop = Shop(base, base, base, provider.base)
            wait_until(
                lambda: shop.ending(order) is not None, 40, f"{order} ends: {shop.saga(order)}"
            )
            assert shop.assert_ended_well(order) == "shipped", shop.saga(order)
            assert shop.charges(order) == (1, Decimal(20))


def test_its_provider_knows_an_authorization_after_a_kill(tmp_path: Path) -> None:
    """The outsider's case: an authorization answered, `kill -9`, a restart: the void of it is
    performed, not a 404 parking the saga."""
    env, port = {"STRATA_DATA_DIR": str(tmp_path / "var")}, free_port()
    body = {"amount": "20.00", "currency": "EUR"}
    with running_service(ALL_IN_ONE, env, "STRATA_PORT", port=port) as (base, process):
        provider = RunningSimulator(f"{base}/simulators/payment-provider")
        held = provider.post("/authorizations", "a1", body).json()
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    with running_service(ALL_IN_ONE, env, "STRATA_PORT", port=port) as (base, _):
        provider = RunningSimulator(f"{base}/simulators/payment-provider")
        assert provider.post("/authorizations", "a1", body).json() == held
        void = provider.post(f"/authorizations/{held['reference']}/void", "v1")
        assert void.json() == {"reference": held["reference"], "state": "voided"}
