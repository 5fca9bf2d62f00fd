"""Fulfilment throughput: orders fulfilled end to end per second, against plain commands per
second of the same process, in one run.

The whole system runs in this process (the write API's app with its job pollers and reactions,
as `strata-write-api` serves it) on the embedded SQLite stores, or on PostgreSQL with
`--postgres URL` (databases `strata_bench_f_<context>`, dropped and created). The payment
provider and the carrier are the simulators as real processes, with no latency.

(a) plain: `--plain` renames of one user, one after the other: the commands per second of the
    write path here.
(b) fulfilment: `--orders` orders are created with a line (not timed), then all placed at once;
    the run waits until every fulfilment has completed. It reports orders per second, the
    placed -> shipped latency of each order (the `Shipped` event's time minus the `Placed`
    event's), and the commands the fulfilment made per second: every event appended to the
    payments, shipping and fulfilment stores and the orders' `Paid` and `Shipped`, each one a
    command's commit.

Prints the ratio (b commands/s) / (a commands/s); target >= 0.5.

    .venv/bin/python bench/fulfilment.py --orders 200
    .venv/bin/python bench/fulfilment.py --postgres postgresql://postgres@127.0.0.1:5432/postgres
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

import httpx
import psycopg
from eventsourcing.domain import DomainEvent
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contexts.registered import REGISTRY  # noqa: E402
from contexts.settings import Settings  # noqa: E402
from eventlog.stores import Services  # noqa: E402
from runtime.auth.jwks import StaticKeys  # noqa: E402
from tests.support.auth import IDENTITY, OPERATOR  # noqa: E402
from tests.support.processes import entry_point, running_service  # noqa: E402
from write_api.app import create_app  # noqa: E402

TARGET_RATIO = 0.5


def trusted_keys() -> StaticKeys:
    """Requests carry tokens of the tests' identity; the app verifies them as in production."""
    kid = IDENTITY.key.kid
    if kid is None:
        raise RuntimeError("the tests' identity key has no kid")
    return StaticKeys({kid: IDENTITY.key})


class Providers(TypedDict):
    """The simulators' URLs, as settings fields."""

    payment_provider_url: str
    carrier_url: str


@contextmanager
def simulators() -> Iterator[Providers]:
    with (
        running_service(
            entry_point("strata-payment-provider"), {}, "STRATA_PAYMENT_PROVIDER_PORT"
        ) as (provider, _),
        running_service(entry_point("strata-carrier"), {}, "STRATA_CARRIER_PORT") as (carrier, _),
    ):
        yield Providers(payment_provider_url=provider, carrier_url=carrier)


def stores(postgres: str | None, data_dir: Path) -> dict[str, Any]:
    if postgres is None:
        return {"data_dir": data_dir}
    urls = {}
    with psycopg.connect(postgres, autocommit=True) as conn:
        for context in REGISTRY:
            name = f"strata_bench_f_{context.name}"
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
            urls[context.settings_field] = postgres.rsplit("/", 1)[0] + f"/{name}"
    return urls


def plain_rate(client: TestClient, count: int) -> float:
    user = client.post("/users", json={"name": "Plain", "email": f"{uuid.uuid4()}@x.org"})
    path = f"/users/{user.json()['id']}/name"
    started = time.perf_counter()
    for index in range(count):
        assert client.put(path, json={"name": f"n{index}"}).status_code == 200
    return count / (time.perf_counter() - started)


def appended(services: Services) -> int:
    names = ("payments", "shipping", "fulfilment")
    return sum(services[name].recorder.max_notification_id() or 0 for name in names)


def fulfil(client: TestClient, services: Services, count: int) -> dict[str, Any]:
    user = client.post("/users", json={"name": "Buyer", "email": f"{uuid.uuid4()}@x.org"})
    orders = []
    for _ in range(count):
        order = client.post("/orders", json={"user_id": user.json()["id"], "currency": "EUR"})
        order_id = order.json()["id"]
        line = {"sku": "A", "quantity": 1, "unit_price": "9.99"}
        assert client.post(f"/orders/{order_id}/lines", json=line).status_code == 200
        orders.append(order_id)
    before = appended(services)
    started = time.perf_counter()
    for order_id in orders:
        assert client.post(f"/orders/{order_id}/place").status_code == 200
    pending = set(orders)
    while pending:
        time.sleep(0.05)
        for order_id in list(pending):
            status = client.get(f"/fulfilments/{order_id}").json().get("status")
            if status in ("completed", "cancelled", "parked"):
                pending.discard(order_id)
    elapsed = time.perf_counter() - started
    return {"orders": orders, "elapsed": elapsed, "commands": appended(services) - before}


def latencies(services: Services, orders: list[str]) -> list[float]:
    application = services["orders"]
    result = []
    for order_id in orders:
        stored = application.events.get(uuid.UUID(order_id))
        events = {type(e).__name__: e for e in stored if isinstance(e, DomainEvent)}
        if "Shipped" in events:
            delta = events["Shipped"].timestamp - events["Placed"].timestamp
            result.append(delta.total_seconds() * 1000)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--plain", type=int, default=500)
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: embedded SQLite)")
    parser.add_argument(
        "--provider-latency-ms", type=int, default=0, help="each simulator operation's delay"
    )
    parser.add_argument(
        "--job-concurrency", type=int, default=None, help="STRATA_JOB_CONCURRENCY (default: its)"
    )
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir, simulators() as providers:
        for url in providers.values():
            faults = {"latency_ms": arguments.provider_latency_ms}
            httpx.put(f"{url}/control", json=faults, timeout=5).raise_for_status()
        concurrency = (
            {}
            if arguments.job_concurrency is None
            else {"job_concurrency": arguments.job_concurrency}
        )
        settings = Settings(
            **stores(arguments.postgres, Path(data_dir)), **providers, **concurrency
        )
        app = create_app(settings, keys=trusted_keys())
        with TestClient(app, headers=OPERATOR) as client:
            services: Services = app.state.services  # built when the app starts
            plain = plain_rate(client, arguments.plain)
            run = fulfil(client, services, arguments.orders)
            shipped = latencies(services, run["orders"])
    per_second = run["commands"] / run["elapsed"]
    figures = {
        "mode": "postgres" if arguments.postgres else "sqlite",
        "provider_latency_ms": arguments.provider_latency_ms,
        "job_concurrency": settings.job_concurrency,
        "plain_commands_per_second": round(plain, 1),
        "orders": arguments.orders,
        "shipped": len(shipped),
        "orders_per_second": round(arguments.orders / run["elapsed"], 2),
        "fulfilment_commands_per_second": round(per_second, 1),
        "ratio": round(per_second / plain, 3),
        "placed_to_shipped_ms": {
            "p50": round(statistics.median(shipped), 1) if shipped else None,
            "p99": round(sorted(shipped)[int(len(shipped) * 0.99) - 1], 1) if shipped else None,
        },
        "target_ratio": TARGET_RATIO,
    }
    if arguments.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:32} {value}")


if __name__ == "__main__":
    main()
