"""The fulfilment across processes (issue 9): the saga's write service sends its commands to the
participants' write services, payments and shipping call the simulators, each a process of the
stack; and kill -9 at random moments of the saga's, the participants' and the relays' processes
never leaves an order charged twice, stuck silently, or cancelled with money held."""

import os
import random
import signal
import threading
import time
from decimal import Decimal
from functools import partial

import httpx

from tests.support.breaker_flow import (
    BreakerWatch,
    check_outage_bounds_calls,
    check_recovery_closes,
)
from tests.support.servers import wait_until
from tests.support.shop import Shop
from tests.support.simulators import RunningSimulator
from tests.support.stack import Stack

VICTIMS = (
    "write-fulfilment",
    "write-payments",
    "write-shipping",
    "relay-orders",
    "relay-payments",
    "relay-shipping",
)
ORDERS = 30
KILLS = 6


def _shop(stack: Stack) -> Shop:
    return Shop(
        stack.url("write-users"),
        stack.url("write-orders"),
        stack.url("write-fulfilment"),
        stack.url("payment-provider"),
    )


def test_a_placed_order_ends_shipped_with_one_capture(stack: Stack) -> None:
    shop = _shop(stack)
    order = shop.place("42.00")
    wait_until(lambda: shop.ending(order) is not None, 60, f"{order} ends: {shop.saga(order)}")
    assert shop.assert_ended_well(order) == "shipped"
    assert shop.charges(order) == (1, Decimal(42))


def test_a_provider_outage_opens_the_payments_breaker_and_recovery_closes_it(stack: Stack) -> None:
    """tests/support/breaker_flow.py, on the stack: the payments service is a process of its own,
    with the default threshold (5 failed requests) and retries (2 per call), and recovery after
    1 s (tests/support/stack.py)."""
    shop, provider = _shop(stack), RunningSimulator(stack.url("payment-provider"))
    metrics = f"{stack.url('write-payments')}/metrics"
    watch = BreakerWatch(lambda: httpx.get(metrics, timeout=5).text, provider.requests)
    provider.control(outage=True)
    try:
        before = watch.counts()
        orders = [shop.place("21.00") for _ in range(4)]
        outage_end = check_outage_bounds_calls(watch, before, threshold=5, probes=2)
    finally:
        provider.control()
    check_recovery_closes(watch, outage_end)

    def ended(order: str) -> bool:
        return shop.ending(order) is not None

    for order in orders:
        wait_until(partial(ended, order), 60, f"{order} ends")
        assert shop.assert_ended_well(order) == "shipped"


def _kill_at_random(stack: Stack, rng: random.Random, stop: threading.Event) -> list[str]:
    killed: list[str] = []
    while len(killed) < KILLS and not stop.wait(rng.uniform(0.3, 1.5)):
        victim = rng.choice(VICTIMS)
        try:
            os.kill(stack.pid(victim), signal.SIGKILL)
        except ProcessLookupError:  # between a kill and its restart
            continue
        killed.append(victim)
    return killed


def test_every_order_ends_in_one_of_three_states_across_kill_9(stack: Stack) -> None:
    shop, rng = _shop(stack), random.Random(9)
    killed: list[str] = []
    stop = threading.Event()
    killer = threading.Thread(target=lambda: killed.extend(_kill_at_random(stack, rng, stop)))
    killer.start()
    try:
        # a decline now and then (cents 13): some orders end cancelled
        orders = [
            shop.place(f"{rng.randrange(5, 90)}.{rng.choice(['00', '13'])}") for _ in range(ORDERS)
        ]
        time.sleep(0.1)
    finally:
        stop.set()
        killer.join()
    assert len(killed) >= 3, killed

    wait_until(stack.all_ready, 60, "every killed process is restarted and ready")
    pending = set(orders)

    def all_ended() -> bool:
        pending.difference_update({o for o in list(pending) if shop.ending(o) is not None})
        return not pending

    wait_until(all_ended, 120, "every order's fulfilment ends")
    endings = [shop.assert_ended_well(order) for order in orders]
    assert "shipped" in endings and "cancelled" in endings, endings
