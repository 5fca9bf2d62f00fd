"""`replay rebuild` and `replay rebuild --retire` while projector workers of the partitioned mode
run as threads of the test (projections.workers, on real PostgreSQL, Redis and NATS): two
workers split the partitions and project orders as they are written; a SQL model (`orders`)
and a Redis one (`user_stats`) are rebuilt and swapped meanwhile. Then one worker leaves and
the other takes its partitions over on consumers started from the new version's checkpoints,
whose stream sequence every partition had reached (projections.rebuild_checkpoints). The new
versions take the later orders and equal one projector's over the whole log (order totals and
per-user counts would show an event applied twice or skipped). An audit rebuild leaves them
active; retiring drops version 1 with its partition checkpoints."""

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from contexts.registered import REGISTRY
from contexts.settings import Settings
from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.envelope import PARTITIONS
from eventlog.stores import Services, build_services
from projections.targets import following_targets
from readmodels.catalog import ORDERS, USER_STATS
from readmodels.checkpoints import read_checkpoint
from readmodels.keys import RedisLayout
from readmodels.partition_checkpoints import (
    partition_slot,
    read_all_positions,
    redis_all_positions,
)
from replay.main import app as replay_app
from tests.support.dumps import Dump, differences, dump_read_models
from tests.support.projections import Scenario, project, read_side
from tests.support.projector_threads import (
    ProjectorThread,
    read_stores,
    stack_settings,
    wait_for,
)
from tests.support.relays import RelayThread

pytestmark = [pytest.mark.postgres]

REBUILT = ("orders", "user_stats")
ORDERS_ONLY = REGISTRY.only("orders")
"""The context both models read: its stores, relay and projections only (fewer connections)."""
CTX = CommandContext(correlation_id="rebuild-with-workers")


@pytest.fixture
def settings() -> Iterator[Settings]:
    with stack_settings(projector_mode="partitioned", projector_rebalance_seconds=0.2) as built:
        yield built


def place_order(services: Services, user: uuid.UUID, amount: int) -> None:
    order = services.application(OrdersService).create_order(CTX, user, "EUR").id
    services.application(OrdersService).add_line(CTX, order, "A", amount, Decimal("2.50"))
    services.application(OrdersService).place(CTX, order)


class Writer:
    """Places orders for a few users on a thread of its own until stopped."""

    def __init__(self, services: Services, users: list[uuid.UUID]) -> None:
        self.services, self.users, self.placed = services, users, 0
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Writer":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)
        assert self.error is None, self.error

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                place_order(self.services, self.users[self.placed % len(self.users)], 1)
                self.placed += 1
        except Exception as error:  # noqa: BLE001 - raised in the test's thread
            self.error = error


def replay(settings: Settings, *arguments: str) -> dict[str, Any]:
    """`replay <arguments> --json` on the test's stores: its JSON answer."""
    env = {
        ORDERS_ONLY["orders"].database_url_variable: str(settings.database_url("orders")),
        "STRATA_READ_DATABASE_URL": str(settings.read_database_url),
        "STRATA_REDIS_URL": str(settings.redis_url),
        "STRATA_STREAM_NAMESPACE": settings.stream_namespace,
    }
    result = CliRunner().invoke(replay_app, [*arguments, "--json"], env=env, obj=ORDERS_ONLY)
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def expected(services: Services, tmp_path: Path) -> Dump:
    with read_side("sqlite", tmp_path, name="expected") as clean:
        rebuilt = clean.with_projections(
            [p for p in ORDERS_ONLY.projections() if p.name in REBUILT]
        )
        project(rebuilt, Scenario(services))
        return dump_read_models(rebuilt.targets)


def active(settings: Settings) -> Dump:
    with read_stores(settings) as (db, redis):
        targets = [t for t in following_targets(db, redis) if t.projection.name in REBUILT]
        for target in targets:
            target.prepare()  # reads which version is active
        return dump_read_models(targets)


def partition_positions(settings: Settings, version: int) -> dict[tuple[str, str], int]:
    """The partition checkpoints of both rebuilt models at `version`, by (model, pNN)."""
    with read_stores(settings) as (db, redis), db.transaction(write=False) as tx:
        positions = dict(read_all_positions(tx, [ORDERS.at(version)]))
        positions.update(redis_all_positions(redis, RedisLayout(), [USER_STATS.at(version)]))
    return {
        (model, f"p{p:02d}"): positions[(model, partition_slot("orders", p))]
        for model in REBUILT
        for p in range(PARTITIONS)
    }


def rebuild_while_writing(settings: Settings, writer: Writer) -> dict[str, dict[str, Any]]:
    """`replay rebuild` of both models while orders are placed, some before and some after."""
    with writer:
        wait_for(
            lambda: writer.error is not None or min(partition_positions(settings, 1).values()) > 0,
            "every partition applied some orders",
        )
        swaps = {name: replay(settings, "rebuild", name, "--page-size", "50") for name in REBUILT}
        wait_for(lambda: writer.placed >= 20 or writer.error is not None, "orders placed after")
    return swaps


def assert_caught_up(settings: Settings, services: Services, tmp_path: Path) -> None:
    """The active versions come to equal one projector's over the whole log."""
    wanted = expected(services, tmp_path)
    try:
        wait_for(lambda: active(settings) == wanted, "the workers caught up", timeout=30)
    except AssertionError:
        raise AssertionError(differences(wanted, active(settings))) from None


def context_stream_seqs(settings: Settings, version: int) -> dict[str, int]:
    """The stream sequence of both models' `orders` context checkpoints at `version`."""
    with read_stores(settings) as (db, redis), db.transaction(write=False) as tx:
        orders = read_checkpoint(tx, "orders", version, "orders").stream_seq
        user_stats = redis.get(RedisLayout().stream_seq_key("user_stats", version, "orders"))
    return {"orders": orders, "user_stats": int(user_stats or 0)}


def leftovers(settings: Settings, version: int) -> tuple[int, int]:
    """Rows of `orders` in rm_partition_checkpoints and keys of `user_stats` at `version`."""
    with read_stores(settings) as (db, redis), db.transaction(write=False) as tx:
        row = tx.query_one(
            "SELECT count(*) FROM rm_partition_checkpoints"
            " WHERE projection = 'orders' AND version = ?",
            [version],
        )
        keys = list(redis.scan_iter(match=RedisLayout().prefix("user_stats", version) + "*"))
    return (0 if row is None else int(str(row[0]))), len(keys)


def test_a_rebuild_swaps_while_workers_project_and_they_go_on_in_the_new_version(
    settings: Settings, tmp_path: Path
) -> None:
    services = build_services(settings, REGISTRY.only("users", "orders"))
    tag = uuid.uuid4().hex[:8]
    users = [
        services.application(UsersService).register(CTX, f"U{n}", f"u{n}-{tag}@x.io").id
        for n in range(12)
    ]
    try:
        with (
            RelayThread(settings, "orders"),
            ProjectorThread(settings, "w1", contexts=ORDERS_ONLY) as first,
        ):
            with ProjectorThread(settings, "w2", holding=1, contexts=ORDERS_ONLY):
                swaps = rebuild_while_writing(settings, Writer(services, users))
                seqs = context_stream_seqs(settings, 2)
            # w2 left: w1 takes its partitions over, on consumers started from version 2's
            # checkpoints (the shadow's, where no worker has written since the swap).
            worker = first.worker
            assert worker is not None
            wait_for(lambda: len(worker.held) == PARTITIONS, "w1 holds every partition")
            for n, user in enumerate(users):
                place_order(services, user, n + 2)
            assert_caught_up(settings, services, tmp_path)
            moved = partition_positions(settings, 2)
            v1_before = leftovers(settings, 1)
            audit = replay(settings, "rebuild", "orders", "--at", datetime.now(UTC).isoformat())
            retired = {
                name: replay(settings, "rebuild", name, "--retire", "--grace", "0")["retired"]
                for name in REBUILT
            }
            place_order(services, users[0], 99)  # the workers go on in version 2
            assert_caught_up(settings, services, tmp_path)
    finally:
        services.close()
    assert {name: (s["swapped"], s["version"]) for name, s in swaps.items()} == {
        "orders": (True, 2),
        "user_stats": (True, 2),
    }
    # The workers applied the later orders to version 2, partition by partition.
    later = [key for key, at in moved.items() if at > swaps[key[0]]["positions"]["orders"]]
    assert len(later) >= len(REBUILT) * 4, moved
    # A stream sequence no later than the swap's position (one stream message per position in
    # this namespace), and not the start of the stream.
    for name, seq in seqs.items():
        assert 0 < seq <= swaps[name]["positions"]["orders"], seqs
    assert (audit["kind"], audit["version"], audit["swapped"]) == ("audit", 3, False)
    assert retired == {"orders": [1], "user_stats": [1]}
    assert v1_before[0] > 0 and v1_before[1] > 0
    assert leftovers(settings, 1) == (0, 0)
