"""`replay rebuild | projections | dlq` as an operator runs them on the embedded default:
subprocesses, exit codes, `--json`, one-line errors; kill -9 in the middle of a rebuild, then
resume."""

import fcntl
import json
import os
from pathlib import Path
from typing import Any

import pytest

from contexts.registered import REGISTRY
from contexts.settings import CONTEXTS, Settings
from eventlog.envelope import envelope_source
from eventlog.stores import build_services
from projections import dead_letters
from projections.model import Message, Park
from projections.targets import following_targets
from projections.verify import fingerprint
from readmodels.sql import SqlDatabase, SQLiteDatabase
from tests.support.postgres import url_variables
from tests.support.processes import run_cli
from tests.support.replay_cli import (
    REPLAY,
    assert_one_line_error,
    embedded_data,
    embedded_env,
    embedded_shadow_position,
    kill_mid_rebuild,
    listed_projection,
    ok_json,
    replay,
)


@pytest.fixture
def embedded(tmp_path: Path) -> dict[str, str]:
    data_dir = tmp_path / "var"
    embedded_data(data_dir)
    return embedded_env(data_dir)


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
    orders = listed_projection(embedded, "orders")
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
    directory = listed_projection(embedded, "users_directory")
    assert directory["active_version"] == 1
    assert [v["label"].startswith("at_") for v in directory["versions"]] == [True]


def test_a_projection_whose_code_changed_is_rebuilt_with_changed(
    embedded: dict[str, str],
) -> None:
    db = SQLiteDatabase(Path(embedded["STRATA_DATA_DIR"]) / "read.sqlite")
    try:
        with db.transaction() as tx:  # as an earlier projection code keyed names
            tx.execute("UPDATE users_directory SET name_lower = upper(name)")
    finally:
        db.close()

    refused = replay(embedded, "rebuild", "users_directory")
    assert_one_line_error(refused, 1, "rebuild it with --changed")
    done = ok_json(embedded, "rebuild", "users_directory", "--changed")
    assert done["swapped"] and done["differences"]
    assert all(d.startswith("users_directory[") for d in done["differences"])
    assert listed_projection(embedded, "users_directory")["active_version"] == done["version"]
    again = replay(embedded, "rebuild", "users_directory")
    assert again.returncode == 0 and "differed" not in again.stdout


def test_bad_arguments_are_one_line_errors(embedded: dict[str, str], tmp_path: Path) -> None:
    cases = [
        (("rebuild", "nope"), 2, "unknown projection 'nope'"),
        (("rebuild", "orders", "--at", "yesterday-ish"), 2, "--at:"),
        (("rebuild", "orders", "--at", "2999-01-01"), 2, "in the future"),
        (("rebuild", "orders", "--retire", "--dry-run"), 2, "--retire takes no"),
        (("rebuild", "orders", "--retire", "--changed"), 2, "--retire takes no"),
        (("rebuild", "orders", "--changed", "--at", "-1s"), 2, "--changed takes no --at"),
        (("rebuild", "orders", "--page-size", "0"), 2, "page-size"),
        (("rebuild",), 2, "Missing argument"),
        (("dlq", "list", "--status", "lost"), 2, "--status"),
        (("dlq", "list", "--projection", "nope"), 2, "unknown projection"),
        (("dlq", "show", "abc"), 2, "ID"),
        (("dlq", "show", "999"), 3, "no dead letter 999"),
        (("dlq", "show", "9" * 23), 2, "ID"),
        (("dlq", "retry", str(2**63)), 2, "ID"),
        (("dlq", "list", "--after", str(2**63)), 2, "--after"),
        (("dlq", "retry", "999"), 3, "no dead letter 999"),
        (("dlq", "skip", "999"), 3, "no dead letter 999"),
        (("projections", "--bogus"), 2, "--bogus"),
    ]
    for args, code, text in cases:
        assert_one_line_error(replay(embedded, *args), code, text)
    empty = embedded_env(tmp_path / "nothing")
    assert_one_line_error(replay(empty, "rebuild", "orders"), 1, "no users event store")
    for args in (
        ("dlq", "list"),
        ("dlq", "show", "1"),
        ("dlq", "retry", "1"),
        ("dlq", "skip", "1"),
    ):
        assert_one_line_error(replay(empty, *args), 1, "no read database at")
    assert not (tmp_path / "nothing").exists()  # a listing creates no folder, no read database
    down = {
        **os.environ,
        **url_variables({c: f"postgresql://nobody@127.0.0.1:1/{c}" for c in CONTEXTS}),
    }
    assert_one_line_error(replay(down, "projections"), 1, "failed")


def test_projections_piped_are_a_line_each_not_folded_at_80_columns(
    embedded: dict[str, str],
) -> None:
    piped = run_cli(REPLAY, {k: v for k, v in embedded.items() if k != "COLUMNS"}, "projections")

    assert piped.returncode == 0, piped.stderr
    rows = {line.split()[0]: line for line in piped.stdout.splitlines() if line.strip()}
    for listed in ok_json(embedded, "projections")["projections"]:
        contexts = [f"{c['context']}:{c['position']}/{c['head']}" for c in listed["contexts"]]
        assert ", ".join(contexts) in rows[listed["projection"]], piped.stdout
    assert max(len(line) for line in piped.stdout.splitlines()) > 80


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
    orders_row = listed_projection(embedded, "orders")
    assert orders_row["dead_letters"] == 1


def test_kill_9_mid_rebuild_then_resume_completes_and_verifies(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    embedded_data(data_dir, orders=1500)
    env = embedded_env(data_dir)
    reached = kill_mid_rebuild(env, lambda: embedded_shadow_position(data_dir))
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
    orders = listed_projection(embedded, "orders")
    assert orders["active_version"] == 1
