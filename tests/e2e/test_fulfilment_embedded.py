"""What the Quickstart starts fulfils orders out of the box (issue 9): `strata` with no provider
URL runs both simulators in its process, and a placed order ends shipped with one capture."""

from pathlib import Path

from tests.support.processes import entry_point, running_service
from tests.support.servers import wait_until
from tests.support.shop import Shop

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
        assert shop.charges(order) == (1, 20)
    output = process.stdout.read() if process.stdout else ""
    assert f"payment-provider simulator, in this process: {base}/simulators/" in output
