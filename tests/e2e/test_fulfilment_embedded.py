"""What the Quickstart starts fulfils orders out of the box (issue 9): `strata` with no provider
URL runs both simulators in its process, and a placed order ends shipped with one capture, even
when the process is killed while a provider call is under way; killed, its simulators still know
what they answered."""

import os
import signal
import socket
from decimal import Decimal
from pathlib import Path

from tests.support.processes import entry_point, free_port, run_cli, running_service
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


def test_restarted_with_provider_calls_due_it_refuses_none_of_its_own_calls(
    tmp_path: Path,
) -> None:
    """Restarted with provider jobs due, its job pollers call the simulators in its process
    while its lifespan is still starting. Its port listens from before that (the calls wait in
    the backlog), so none is refused and no breaker opens: the orders go on at once, not after
    the breaker's recovery (10 s, which after a crash pushed sagas past their 30 s deadline:
    orders cancelled as "authorize timed out")."""
    env = {"STRATA_DATA_DIR": str(tmp_path / "var"), "STRATA_BREAKER_FAILURE_THRESHOLD": "1"}
    port = free_port()
    with running_service(ALL_IN_ONE, env, "STRATA_PORT", port=port) as (base, process):
        provider = RunningSimulator(f"{base}/simulators/payment-provider")
        provider.control(outage=True)
        shop = Shop(base, base, base, provider.base)
        orders = [shop.place("20.00") for _ in range(3)]
        wait_until(lambda: provider.requests() > 0, 10, "an authorize call was refused")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    log = tmp_path / "restarted.log"
    with running_service(ALL_IN_ONE, env, "STRATA_PORT", port=port, log=log) as (base, _):
        shop = Shop(base, base, base, f"{base}/simulators/payment-provider")
        for order in orders:
            wait_until(lambda: shop.ending(order) is not None, 30, f"{order}: {shop.saga(order)}")  # noqa: B023
            assert shop.assert_ended_well(order) == "shipped", shop.saga(order)
    said = log.read_text(encoding="utf-8")
    assert "Connection refused" not in said
    assert "circuit breaker of payment-provider is now open" not in said


def test_a_port_it_cannot_listen_on_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """It listens before it starts anything, so a port taken is said at once, in one line."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "STRATA_DATA_DIR": str(tmp_path / "var"), "STRATA_PORT": str(port)}
        done = run_cli(ALL_IN_ONE or "strata", env)
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(
        f"strata: cannot listen on 127.0.0.1:{port} (STRATA_HOST, STRATA_PORT): "
    )
    assert "export STRATA_TOKEN" not in done.stdout
