"""A rebuild while commands keep flowing: readers never see an error or an empty result during
the swap, and after it the read models follow new writes. Embedded default (one process), and
the stack's stores (PostgreSQL event stores and read database, Redis) with a projector thread
that applies batches through the same version-following targets as the stack's consumers."""

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from contexts.settings import CONTEXTS, Settings
from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from embedded.app import create_app
from eventlog.envelope import envelope_source
from eventlog.stores import build_services
from projections.embedded import Tailer
from projections.engine import Engine
from projections.rebuild import Rebuilder
from projections.rebuild_targets import open_read_models
from projections.targets import following_targets
from read_api.app import create_app as create_read_app
from readmodels.sql import PostgresDatabase
from tests.support.auth import OPERATOR
from tests.support.postgres import require_postgres, scratch_databases, url_settings
from tests.support.read_models import require_redis, scratch_redis_database


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "var")
    with TestClient(create_app(settings), headers=OPERATOR) as test_client:
        test_client.app.state.strata_settings = settings  # type: ignore[attr-defined]
        yield test_client


def command(client: TestClient, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    response = client.request(method, url, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code in (200, 201), response.text
    return response.json()


def new_order(client: TestClient, user: str, sku: str) -> dict[str, Any]:
    order = command(client, "POST", "/orders", {"user_id": user, "currency": "EUR"})
    command(
        client,
        "POST",
        f"/orders/{order['id']}/lines",
        {"sku": sku, "quantity": 1, "unit_price": "2.50"},
    )
    return command(client, "POST", f"/orders/{order['id']}/place")  # type: ignore[no-any-return]


def test_rebuild_and_swap_with_no_read_downtime(client: TestClient, tmp_path: Path) -> None:
    user = command(client, "POST", "/users", {"name": "Ada", "email": "ada@example.com"})["id"]
    for index in range(30):
        new_order(client, user, f"S{index}")
    reads = [
        f"/read/users/{user}",
        f"/read/users/{user}/stats",
        "/read/users",
        f"/read/orders?user_id={user}",
    ]
    for url in reads:  # wait until the fan-out has everything once
        deadline = time.monotonic() + 10
        while client.get(url).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)

    stop = threading.Event()
    failures: list[str] = []
    counts = {"reads": 0, "writes": 0}

    def reader() -> None:
        while not stop.is_set():
            for url in reads:
                response = client.get(url)
                body = response.json()
                empty = not body or (isinstance(body.get("items"), list) and not body["items"])
                if response.status_code != 200 or empty:
                    failures.append(f"{url}: {response.status_code} {response.text[:200]}")
                counts["reads"] += 1

    def writer() -> None:
        index = 0
        while not stop.is_set():
            new_order(client, user, f"W{index}")
            index += 1
            counts["writes"] += 1

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        settings: Settings = client.app.state.strata_settings  # type: ignore[attr-defined]
        with open_read_models(settings) as models:
            for name in ("orders", "user_profiles", "users_directory", "user_stats"):
                result = Rebuilder(models, page_size=20).rebuild(name)
                assert result.swapped, name
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    assert failures == []
    assert counts["reads"] > 20 and counts["writes"] > 3
    # After the swap the active (rebuilt) versions follow new writes: read-your-writes holds.
    placed = new_order(client, user, "AFTER")
    response = client.get(f"/read/orders/{placed['id']}", params={"position": placed["position"]})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "placed"
    profile = client.get(f"/read/users/{user}/stats", params={"position": placed["position"]})
    assert profile.status_code == 200
    assert profile.json()["orders"] == counts["writes"] + 31


@pytest.mark.postgres
def test_stack_rebuild_and_swap_with_no_read_downtime(tmp_path: Path) -> None:
    with (
        scratch_databases(require_postgres(), *CONTEXTS, "read") as urls,
        scratch_redis_database(require_redis()) as redis_url,
    ):
        settings = Settings(
            **url_settings(urls),
            redis_url=redis_url,
            group_commit=False,
            data_dir=tmp_path / "var",
        )
        services = build_services(settings)
        db = PostgresDatabase(urls["read"], pool_size=8)
        redis = Redis.from_url(redis_url)
        targets = following_targets(db, redis)
        for target in targets:
            target.prepare()
        engines = [Engine(target) for target in targets]
        tailers = [
            Tailer(
                service.name,
                envelope_source(service.recorder),
                [e for e in engines if service.name in e.projection.contexts],
                page_size=50,
                poll_interval=0.02,
            )
            for service in services.all()
        ]
        for tailer in tailers:
            tailer.start()
        try:
            ctx = CommandContext(correlation_id="live")
            user = services.application(UsersService).register(ctx, "Ada", "ada@example.com").id
            for _ in range(30):
                services.application(OrdersService).create_order(ctx, user, "EUR")
            with TestClient(create_read_app(settings), headers=OPERATOR) as client:
                reads = [
                    f"/users/{user}",
                    f"/users/{user}/stats",
                    "/users",
                    f"/orders?user_id={user}",
                ]
                for url in reads:
                    deadline = time.monotonic() + 10
                    while client.get(url).status_code != 200 and time.monotonic() < deadline:
                        time.sleep(0.05)
                stop = threading.Event()
                failures: list[str] = []
                counts = {"reads": 0, "writes": 0}

                def reader() -> None:
                    while not stop.is_set():
                        for url in reads:
                            response = client.get(url)
                            body = response.json()
                            items = body.get("items") if isinstance(body, dict) else None
                            if response.status_code != 200 or not body or items == []:
                                failures.append(f"{url}: {response.status_code} {response.text}")
                            counts["reads"] += 1

                def writer() -> None:
                    while not stop.is_set():
                        services.application(OrdersService).create_order(ctx, user, "EUR")
                        counts["writes"] += 1

                threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
                for thread in threads:
                    thread.start()
                try:
                    with open_read_models(settings) as models:
                        for name in ("user_profiles", "user_stats", "orders", "users_directory"):
                            assert Rebuilder(models, page_size=20).rebuild(name).swapped
                    time.sleep(0.3)
                finally:
                    stop.set()
                    for thread in threads:
                        thread.join(30)
                assert failures == []
                assert counts["reads"] > 20 and counts["writes"] > 3
                placed = services.application(OrdersService).create_order(ctx, user, "EUR")
                position = f"orders:{placed.position}"
                stats = client.get(f"/users/{user}/stats", params={"position": position})
                assert stats.status_code == 200, stats.text
                assert stats.json()["orders"] == 30 + counts["writes"] + 1
                order = client.get(f"/orders/{placed.id}", params={"position": position})
                assert order.status_code == 200, order.text
        finally:
            for tailer in tailers:
                tailer.stop()
            services.close()
            redis.close()
            db.close()
