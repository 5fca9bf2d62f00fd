"""Fulfilment on the stack: every context's write service, its relay, the projectors, the read
API and the two simulators (no latency) as real processes under the supervisor, on throwaway
PostgreSQL, NATS and Redis servers (`tests/support/stack.py`, as the e2e tests run it), every
request with a token of the tests' identity, which the services verify. In one run:

(a) plain: `--plain` renames of one user through the users' write service, one after the other:
    the write path's commands per second across processes here.
(b) one order alone, `--alone` times: placed -> shipped as a client sees it (from the 200 of its
    `place` to the first `GET /orders/{id}` answering "shipped", polled every 5 ms): p50 / p99.
    Each step crosses a relay, JetStream and the saga's or a participant's intake.
(c) `--orders` orders placed at once, waited on until every fulfilment has ended: orders per
    second, and the fulfilment's commands per second (every event appended to the payments,
    shipping and fulfilment stores, each one a command's commit).

Prints the ratio (c commands/s) / (a commands/s); target >= 0.5.

    .venv/bin/python bench/fulfilment_stack.py --orders 60 --alone 20
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contexts.registered import REGISTRY  # noqa: E402
from tests.support.auth import IDENTITY, OPERATOR, JwksServer  # noqa: E402
from tests.support.shop import Shop  # noqa: E402
from tests.support.stack import Stack, running_stack  # noqa: E402

TARGET_RATIO = 0.5
FULFILMENT_STORES = ("payments", "shipping", "fulfilment")


def plain_rate(client: httpx.Client, users: str, count: int) -> float:
    body = {"name": "Plain", "email": f"{uuid.uuid4()}@x.org"}
    user = client.post(f"{users}/users", json=body).json()["id"]
    started = time.perf_counter()
    for index in range(count):
        response = client.put(f"{users}/users/{user}/name", json={"name": f"n{index}"})
        assert response.status_code == 200, response.text
    return count / (time.perf_counter() - started)


def status(client: httpx.Client, shop: Shop, order: str) -> str:
    return str(client.get(f"{shop.orders}/orders/{order}").json()["status"])


def placed_to_shipped(client: httpx.Client, shop: Shop) -> float:
    """Milliseconds from the `place` answer to the order read back shipped."""
    order = shop.unplaced("9.99")
    response = client.post(f"{shop.orders}/orders/{order}/place")
    assert response.status_code == 200, response.text
    started = time.perf_counter()
    while (state := status(client, shop, order)) != "shipped":
        assert state != "cancelled", f"{order} was cancelled"
        time.sleep(0.005)
    return (time.perf_counter() - started) * 1000


def appended(stack: Stack) -> int:
    total = 0
    for context in REGISTRY:
        if context.name in FULFILMENT_STORES:
            with psycopg.connect(stack.env[context.database_url_variable]) as conn:
                table = sql.Identifier(f"{context.name}_events")
                query = sql.SQL("SELECT max(notification_id) FROM {}").format(table)
                row = conn.execute(query).fetchone()
                total += (row[0] if row else None) or 0
    return total


def many_at_once(client: httpx.Client, stack: Stack, shop: Shop, count: int) -> dict[str, Any]:
    orders = [shop.unplaced("9.99") for _ in range(count)]
    before = appended(stack)
    started = time.perf_counter()
    for order in orders:
        assert client.post(f"{shop.orders}/orders/{order}/place").status_code == 200
    pending = set(orders)
    while pending:
        time.sleep(0.05)
        pending = {o for o in pending if shop.ending(o) is None}
    elapsed = time.perf_counter() - started
    endings = [shop.assert_ended_well(order) for order in orders]
    return {
        "elapsed": elapsed,
        "commands": appended(stack) - before,
        "shipped": endings.count("shipped"),
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[max(0, round(len(ordered) * share) - 1)], 1)


def measure(stack: Stack, arguments: argparse.Namespace) -> dict[str, Any]:
    shop = Shop(
        stack.url("write-users"),
        stack.url("write-orders"),
        stack.url("write-fulfilment"),
        stack.url("payment-provider"),
    )
    with httpx.Client(timeout=30, headers=OPERATOR) as client:
        plain = plain_rate(client, shop.users, arguments.plain)
        alone = [placed_to_shipped(client, shop) for _ in range(arguments.alone)]
        run = many_at_once(client, stack, shop, arguments.orders)
    per_second = run["commands"] / run["elapsed"]
    return {
        "plain_commands_per_second": round(plain, 1),
        "alone_placed_to_shipped_ms": {
            "p50": round(statistics.median(alone), 1),
            "p99": percentile(alone, 0.99),
        },
        "orders": arguments.orders,
        "shipped": run["shipped"],
        "orders_per_second": round(arguments.orders / run["elapsed"], 2),
        "fulfilment_commands_per_second": round(per_second, 1),
        "ratio": round(per_second / plain, 3),
        "target_ratio": TARGET_RATIO,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=60)
    parser.add_argument("--alone", type=int, default=20)
    parser.add_argument("--plain", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as logs,
        JwksServer(IDENTITY.key).serving() as identity,
        running_stack(Path(logs), identity) as stack,
    ):
        figures = measure(stack, arguments)
    if arguments.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:32} {value}")


if __name__ == "__main__":
    main()
