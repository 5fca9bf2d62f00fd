"""Running `replay` as an operator does (a subprocess, `--json`, one-line errors) and the data
its projection commands work on: embedded stores projected by the embedded fan-out, or the
stack's stores projected into PostgreSQL and Redis."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import Redis

from contexts.settings import CONTEXTS, Settings
from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.envelope import envelope_source
from eventlog.stores import Services, build_services
from projections.catchup import project_log
from projections.embedded import start_embedded_fanout
from projections.engine import Target
from projections.targets import following_targets
from readmodels.sql import PostgresDatabase, SqlDatabase, SQLiteDatabase
from tests.support.postgres import require_postgres, scratch_databases, url_settings, url_variables
from tests.support.processes import cli_json, run_cli
from tests.support.projections import run_scenario
from tests.support.read_models import require_redis, scratch_redis_database

REPLAY = str(Path(sys.executable).parent / "replay")


def replay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(REPLAY, {**env, "COLUMNS": "200"}, *args)


def ok_json(env: dict[str, str], *args: str) -> Any:
    return cli_json(REPLAY, {**env, "COLUMNS": "200"}, *args)


def listed_projection(env: dict[str, str], name: str) -> dict[str, Any]:
    """One projection's row of `replay projections --json`."""
    listed = ok_json(env, "projections")["projections"]
    return next(p for p in listed if p["projection"] == name)


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stderr.startswith("replay: ") and text in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def many_orders(services: Services, count: int) -> None:
    ctx = CommandContext(correlation_id="bulk")
    user = services.application(UsersService).register(ctx, "Bulk", "bulk@example.com").id
    for _ in range(count):
        services.application(OrdersService).create_order(ctx, user, "EUR")


def embedded_data(data_dir: Path, orders: int = 0) -> None:
    """Stores with the scenario (and `orders` more), projected by the embedded fan-out."""
    settings = Settings(data_dir=data_dir, group_commit=False)
    services = build_services(settings)
    try:
        run_scenario(services)
        many_orders(services, orders)
        fanout = start_embedded_fanout(settings, services)
        try:
            heads = {s.name: s.recorder.max_notification_id() for s in services.all()}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                reached = {
                    t.projection.name: t.checkpoint("orders").position
                    for t in fanout.targets
                    if "orders" in t.projection.contexts
                }
                if all(p == heads["orders"] for p in reached.values()):
                    break
                fanout.wake()
                time.sleep(0.05)
        finally:
            fanout.stop()
    finally:
        services.close()


def embedded_env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "STRATA_DATA_DIR": str(data_dir)}


@dataclass
class ProjectedStack:
    """The stack's stores with the scenario, projected into its read database and Redis."""

    env: dict[str, str]
    db: PostgresDatabase
    redis: Redis
    targets: list[Target]


@contextmanager
def projected_stack(tmp_path: Path, orders: int = 0) -> Iterator[ProjectedStack]:
    """Scratch databases and a Redis database with the scenario (and `orders` more) projected,
    and the environment `replay` reads them through."""
    with (
        scratch_databases(require_postgres(), *CONTEXTS, "read") as urls,
        scratch_redis_database(require_redis()) as redis_url,
    ):
        services = build_services(
            Settings(**url_settings(urls), redis_url=redis_url, group_commit=False)
        )
        db = PostgresDatabase(urls["read"])
        redis = Redis.from_url(redis_url)
        try:
            try:
                run_scenario(services)
                many_orders(services, orders)
                targets = following_targets(db, redis)
                project_log({s.name: envelope_source(s.recorder) for s in services.all()}, targets)
            finally:
                services.close()
            env = {
                **os.environ,
                **url_variables(urls),
                "STRATA_REDIS_URL": redis_url,
                "STRATA_DATA_DIR": str(tmp_path / "var"),
            }
            yield ProjectedStack(env, db, redis, targets)
        finally:
            redis.close()
            db.close()


def shadow_position(db: SqlDatabase, version: int = 2) -> int:
    """The checkpoint a rebuild of `orders` at `version` last wrote (0 before its first)."""
    try:
        with db.transaction(write=False) as tx:
            row = tx.query_one(
                "SELECT position FROM rm_checkpoints WHERE projection = 'orders'"
                " AND version = ? AND context = 'orders'",
                [version],
            )
    except Exception:  # noqa: BLE001 - the table may not exist yet
        return 0
    return 0 if row is None else int(row[0])


def embedded_shadow_position(data_dir: Path) -> int:
    db = SQLiteDatabase(data_dir / "read.sqlite")
    try:
        return shadow_position(db)
    finally:
        db.close()


def kill_mid_rebuild(env: dict[str, str], position: Callable[[], int]) -> int:
    """Starts `replay rebuild orders` in small pages, kills it with SIGKILL once its shadow
    checkpoint (`position`) has passed 200, and returns where it stopped."""
    process = subprocess.Popen(
        [REPLAY, "rebuild", "orders", "--page-size", "5", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while position() < 200 and time.monotonic() < deadline:
        assert process.poll() is None, "the rebuild finished before it could be killed"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return position()
