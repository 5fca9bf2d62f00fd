"""`replay rebuild | projections | dlq` as an operator runs them: subprocesses, exit codes,
`--json`, one-line errors; kill -9 in the middle of a rebuild, then resume (embedded default),
and the same commands on the stack through the same settings."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from contexts.registered import REGISTRY
from contexts.settings import CONTEXTS, Settings
from domain.service import CommandContext
from eventlog.envelope import envelope_source
from eventlog.stores import Services, build_services
from projections import dead_letters
from projections.catchup import project_log
from projections.embedded import start_embedded_fanout
from projections.model import Message, Park
from projections.targets import following_targets, target_at
from projections.verify import compare, fingerprint
from readmodels.sql import PostgresDatabase, SqlDatabase, SQLiteDatabase
from tests.support.dumps import checksum, dump_read_models
from tests.support.postgres import require_postgres, scratch_databases, url_settings, url_variables
from tests.support.projections import run_scenario
from tests.support.read_models import require_redis, scratch_redis_database

REPLAY = str(Path(sys.executable).parent / "replay")


def replay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REPLAY, *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok_json(env: dict[str, str], *args: str) -> Any:
    done = replay(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stderr.startswith("replay: ") and text in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def many_orders(services: Services, count: int) -> None:
    ctx = CommandContext(correlation_id="bulk")
    user = services.users.register(ctx, "Bulk", "bulk@example.com").id
    for _ in range(count):
        services.orders.create_order(ctx, user, "EUR")


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


@pytest.fixture
def embedded(tmp_path: Path) -> dict[str, str]:
    data_dir = tmp_path / "var"
    embedded_data(data_dir)
    return {**os.environ, "STRATA_DATA_DIR": str(data_dir)}


def test_projections_rebuild_and_retire(embedded: dict[str, str]) -> None:
    listed = ok_json(embedded, "projections")["projections"]
    assert {p["projection"]: p["active_version"] for p in listed} == {
        model.name: 1 for model in REGISTRY.read_models
    }
    assert all(p["lag_events"] == 0 and p["dead_letters"] == 0 for p in listed)

    plan = ok_json(embedded, "rebuild", "orders", "--dry-run")
    assert plan["dry_run"] and plan["version"] == 2 and plan["events_to_read"] > 0
    assert plan["target"] == "tables orders_v2, order_lines_v2"
    listed = {p["projection"]: p for p in ok_json(embedded, "projections")["projections"]}
    assert listed["orders"]["versions"] == []

    done = ok_json(embedded, "rebuild", "orders")
    assert done["swapped"] and done["version"] == 2 and len(done["checksum"]) == 64
    human = replay(embedded, "rebuild", "top_spenders")
    assert human.returncode == 0 and "swapped: v2 is active" in human.stdout
    orders = next(
        p for p in ok_json(embedded, "projections")["projections"] if p["projection"] == "orders"
    )
    assert orders["active_version"] == 2
    assert [(v["version"], v["status"]) for v in orders["versions"]] == [
        (1, "previous"),
        (2, "active"),
    ]

    too_soon = replay(embedded, "rebuild", "orders", "--retire", "--grace", "3600")
    assert_one_line_error(too_soon, 1, "swapped moments ago")
    retired = ok_json(embedded, "rebuild", "orders", "--retire", "--grace", "0")
    assert retired["retired"] == [1]

    audit = ok_json(embedded, "rebuild", "users_directory", "--at", "-1s")
    assert not audit["swapped"] and audit["kind"] == "audit" and audit["as_of"]
    directory = next(
        p
        for p in ok_json(embedded, "projections")["projections"]
        if p["projection"] == "users_directory"
    )
    assert directory["active_version"] == 1
    assert [v["label"].startswith("at_") for v in directory["versions"]] == [True]


def test_bad_arguments_are_one_line_errors(embedded: dict[str, str], tmp_path: Path) -> None:
    cases = [
        (("rebuild", "nope"), 2, "unknown projection 'nope'"),
        (("rebuild", "orders", "--at", "yesterday-ish"), 2, "--at:"),
        (("rebuild", "orders", "--at", "2999-01-01"), 2, "in the future"),
        (("rebuild", "orders", "--retire", "--dry-run"), 2, "--retire takes no"),
        (("rebuild", "orders", "--page-size", "0"), 2, "page-size"),
        (("rebuild",), 2, "Missing argument"),
        (("dlq", "list", "--status", "lost"), 2, "--status"),
        (("dlq", "list", "--projection", "nope"), 2, "unknown projection"),
        (("dlq", "show", "abc"), 2, "ID"),
        (("dlq", "show", "999"), 3, "no dead letter 999"),
        (("dlq", "retry", "999"), 3, "no dead letter 999"),
        (("dlq", "skip", "999"), 3, "no dead letter 999"),
        (("projections", "--bogus"), 2, "--bogus"),
    ]
    for args, code, text in cases:
        assert_one_line_error(replay(embedded, *args), code, text)
    empty = {**os.environ, "STRATA_DATA_DIR": str(tmp_path / "nothing")}
    assert_one_line_error(replay(empty, "rebuild", "orders"), 1, "no users event store")
    down = {
        **os.environ,
        **url_variables({c: f"postgresql://nobody@127.0.0.1:1/{c}" for c in CONTEXTS}),
    }
    assert_one_line_error(replay(down, "projections"), 1, "failed")


def park(db: SqlDatabase, projection: str, version: int, envelope: Any) -> None:
    with db.transaction() as tx:
        dead_letters.insert(
            tx,
            projection,
            version,
            envelope.context,
            [Park(Message(envelope), "ValueError: boom", attempts=4)],
        )


def test_dead_letters_list_show_retry_skip(embedded: dict[str, str]) -> None:
    data_dir = Path(embedded["STRATA_DATA_DIR"])
    services = build_services(Settings(data_dir=data_dir, group_commit=False))
    try:
        users = envelope_source(services.users.recorder).select_envelopes("users", 0, 100)
        orders = envelope_source(services.orders.recorder).select_envelopes("orders", 0, 100)
    finally:
        services.close()
    db = SQLiteDatabase(data_dir / "read.sqlite")
    try:
        park(db, "user_profiles", 1, users[0])  # Registered again: applies cleanly
        park(db, "orders", 1, orders[0])  # Created again: the row exists, fails again
        park(db, "daily_sales", 1, orders[1])
    finally:
        db.close()

    listed = ok_json(embedded, "dlq", "list")["dead_letters"]
    assert [(d["id"], d["projection"]) for d in listed] == [
        (1, "user_profiles"),
        (2, "orders"),
        (3, "daily_sales"),
    ]
    assert ok_json(embedded, "dlq", "list", "--projection", "orders")["dead_letters"][0]["id"] == 2
    assert "user_profiles" in replay(embedded, "dlq", "list").stdout
    shown = ok_json(embedded, "dlq", "show", "1")
    assert shown["error"] == "ValueError: boom" and shown["envelope"]["position"] == 1

    assert ok_json(embedded, "dlq", "retry", "1") == {"retried": [1], "failed": None}
    failed = replay(embedded, "dlq", "retry", "2", "--json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["failed"]["attempts"] == 5
    assert ok_json(embedded, "dlq", "skip", "3")["status"] == "skipped"
    assert_one_line_error(replay(embedded, "dlq", "skip", "3"), 1, "skipped, not parked")
    assert [d["id"] for d in ok_json(embedded, "dlq", "list")["dead_letters"]] == [2]
    assert [
        d["status"] for d in ok_json(embedded, "dlq", "list", "--status", "all")["dead_letters"]
    ] == ["retried", "parked", "skipped"]
    orders_row = next(
        p for p in ok_json(embedded, "projections")["projections"] if p["projection"] == "orders"
    )
    assert orders_row["dead_letters"] == 1


def shadow_position(data_dir: Path, version: int) -> int:
    db = SQLiteDatabase(data_dir / "read.sqlite")
    try:
        with db.transaction(write=False) as tx:
            row = tx.query_one(
                "SELECT position FROM rm_checkpoints WHERE projection = 'orders'"
                " AND version = ? AND context = 'orders'",
                [version],
            )
    except Exception:  # noqa: BLE001 - the table may not exist yet
        return 0
    finally:
        db.close()
    return 0 if row is None else int(row[0])


def test_kill_9_mid_rebuild_then_resume_completes_and_verifies(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    embedded_data(data_dir, orders=1500)
    env = {**os.environ, "STRATA_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(
        [REPLAY, "rebuild", "orders", "--page-size", "5", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while shadow_position(data_dir, 2) < 200 and time.monotonic() < deadline:
        assert process.poll() is None, "the rebuild finished before it could be killed"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    reached = shadow_position(data_dir, 2)
    assert 0 < reached < 1500

    resumed = ok_json(env, "rebuild", "orders")
    assert resumed["resumed"] and resumed["version"] == 2 and resumed["swapped"]
    assert resumed["shadow_positions"]["orders"] >= reached
    assert resumed["events"] < resumed["source_heads"]["orders"]  # it did not start over
    db = SQLiteDatabase(data_dir / "read.sqlite")
    try:
        targets = [t for t in following_targets(db) if t.projection.name == "orders"]
        targets[0].prepare()
        assert targets[0].projection.version == 2
        assert fingerprint(targets[0]) == resumed["checksum"]
    finally:
        db.close()


@pytest.mark.postgres
def test_the_same_commands_on_the_stack(tmp_path: Path) -> None:
    redis_server = require_redis()
    with (
        scratch_databases(require_postgres(), *CONTEXTS, "read") as urls,
        scratch_redis_database(redis_server) as redis_url,
    ):
        settings = Settings(
            **url_settings(urls),
            redis_url=redis_url,
            group_commit=False,
        )
        services = build_services(settings)
        db = PostgresDatabase(urls["read"])
        redis = Redis.from_url(redis_url)
        try:
            run_scenario(services)
            targets = following_targets(db, redis)
            sources = {s.name: envelope_source(s.recorder) for s in services.all()}
            project_log(sources, targets)
            live = checksum(dump_read_models(targets))
        finally:
            services.close()
        env = {
            **os.environ,
            **url_variables(urls),
            "STRATA_REDIS_URL": redis_url,
            "STRATA_DATA_DIR": str(tmp_path / "var"),
        }
        try:
            for name in ("user_profiles", "orders"):
                done = ok_json(env, "rebuild", name)
                assert done["swapped"] and done["version"] == 2
            assert ok_json(env, "rebuild", "top_spenders", "--dry-run")["target"] == (
                "redis rm:{top_spenders:v2}:*"
            )
            listed = {p["projection"]: p for p in ok_json(env, "projections")["projections"]}
            assert listed["user_profiles"]["active_version"] == 2
            assert listed["orders"]["contexts"][0]["lag_events"] == 0
            assert ok_json(env, "dlq", "list")["dead_letters"] == []
            for target in targets:
                target.checkpoint("users" if "users" in target.projection.contexts else "orders")
            assert checksum(dump_read_models(targets)) == live  # now read from version 2
            assert redis.exists("rm:{user_profiles:v2}:ckpt:users")
        finally:
            redis.close()
            db.close()


def stack_shadow_position(db: PostgresDatabase) -> int:
    """The checkpoint the bulk backfill of `orders` v2 last wrote (0 before its first)."""
    try:
        with db.transaction(write=False) as tx:
            row = tx.query_one(
                "SELECT position FROM rm_checkpoints WHERE projection = 'orders'"
                " AND version = 2 AND context = 'orders'"
            )
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    return 0 if row is None else int(row[0])


@pytest.mark.postgres
def test_kill_9_mid_rebuild_on_the_stack_then_resume(tmp_path: Path) -> None:
    with (
        scratch_databases(require_postgres(), *CONTEXTS, "read") as urls,
        scratch_redis_database(require_redis()) as redis_url,
    ):
        settings = Settings(
            **url_settings(urls),
            redis_url=redis_url,
            group_commit=False,
        )
        services = build_services(settings)
        db = PostgresDatabase(urls["read"])
        redis = Redis.from_url(redis_url)
        try:
            run_scenario(services)
            many_orders(services, 1500)
            targets = following_targets(db, redis)
            project_log({s.name: envelope_source(s.recorder) for s in services.all()}, targets)
        finally:
            services.close()
        data_dir = tmp_path / "var"
        env = {
            **os.environ,
            **url_variables(urls),
            "STRATA_REDIS_URL": redis_url,
            "STRATA_DATA_DIR": str(data_dir),
        }
        try:
            process = subprocess.Popen(
                [REPLAY, "rebuild", "orders", "--page-size", "5", "--json"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 60
            while stack_shadow_position(db) < 200 and time.monotonic() < deadline:
                assert process.poll() is None, "the rebuild finished before it could be killed"
                time.sleep(0.01)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            assert 0 < stack_shadow_position(db) < 1500

            resumed = ok_json(env, "rebuild", "orders")
            assert resumed["resumed"] and resumed["version"] == 2 and resumed["swapped"]
            assert resumed["shadow_positions"]["orders"] > 0
            assert resumed["backfill"]["events"] < resumed["source_heads"]["orders"]
            orders = next(t for t in targets if t.projection.name == "orders")
            orders.checkpoint("orders")  # re-reads the pointer: version 2
            assert orders.projection.version == 2
            assert fingerprint(orders) == resumed["checksum"]
            old = target_at(orders.projection, 1, db)
            assert compare(old, orders).equal
        finally:
            redis.close()
            db.close()


def test_a_rebuild_that_does_not_verify_or_is_busy_fails_in_one_line(
    embedded: dict[str, str],
) -> None:
    data_dir = Path(embedded["STRATA_DATA_DIR"])
    with open(data_dir / "rebuild-daily_sales-v2.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = replay(embedded, "rebuild", "daily_sales")
    assert_one_line_error(busy, 1, "daily_sales:v2 is being rebuilt by another process")

    db = SQLiteDatabase(data_dir / "read.sqlite")
    try:
        with db.transaction() as tx:
            tx.execute("UPDATE orders SET total_cents = total_cents + 1")
    finally:
        db.close()
    failed = replay(embedded, "rebuild", "orders")
    assert_one_line_error(failed, 1, "orders: the rebuilt model differs from live (kept): orders[")
    assert ".total_cents: live " in failed.stderr
    orders = next(
        p for p in ok_json(embedded, "projections")["projections"] if p["projection"] == "orders"
    )
    assert orders["active_version"] == 1
